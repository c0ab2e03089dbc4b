//! Two threads, each with its own request id. With a global slot these would
//! link frames into each other's stacks; the build must fail instead.
fn main() {
    let threads: Vec<_> = (0..2u32)
        .map(|id| {
            std::thread::spawn(move || {
                nostd_lib::with_request_id(id, || assert_eq!(nostd_lib::request_id(), Some(id)))
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}
