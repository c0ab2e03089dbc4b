//! tower: a [`Layer`] that gives every request its own store.
//!
//! [`StoreLayer::new(make)`](StoreLayer::new) builds a value from each
//! request with `make(&request)` and runs the rest of the request with it
//! installed: the inner service's `call` and every poll of its response
//! future (and its drop) see it through [`get`](crate::get) and
//! [`with`](crate::with). It works for any [`Service`]: axum, tonic,
//! hyper-util, or your own.
//!
//! For HTTP services whose response body is polled after the response
//! future has finished (streaming bodies, SSE, trailers), use
//! [`HttpStoreLayer`](crate::adapters::http::HttpStoreLayer) (feature `http`),
//! which also installs the store while the body is polled.
//!
//! # Examples
//!
//! ```
//! use async_local_storage::{adapters::tower::StoreLayer, get};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! #[derive(Clone, Debug, PartialEq)]
//! struct JobId(u32);
//!
//! async fn handle(job: u32) -> Result<String, std::convert::Infallible> {
//!     Ok(format!("job {job} runs as {:?}", get::<JobId>()))
//! }
//!
//! let service = ServiceBuilder::new()
//!     .layer(StoreLayer::new(|job: &u32| JobId(*job)))
//!     .service(service_fn(handle));
//! let reply = futures::executor::block_on(service.oneshot(7)).unwrap();
//! assert_eq!(reply, "job 7 runs as Some(JobId(7))");
//! ```

use core::fmt;
use core::task::{Context, Poll};

use tower_layer::Layer;
use tower_service::Service;

use crate::{scope, Scoped, WithStore};

/// A [`Layer`] that runs each request with a store built from it.
///
/// `make` is called once per request, with the request, before the inner
/// service's `call`. Its value is visible to that `call` and to every poll of
/// the response future, and is dropped with the response future. Errors and
/// responses pass through unchanged.
///
/// The value is cloned once per request (into the synchronous `call`), which
/// is why it must be `Clone`; keep it cheap to clone (an id, an `Arc`).
///
/// # Examples
///
/// ```
/// use async_local_storage::{adapters::tower::StoreLayer, get};
/// use tower::{service_fn, Layer, ServiceExt};
///
/// #[derive(Clone, Debug, PartialEq)]
/// struct Tenant(&'static str);
///
/// let layer = StoreLayer::new(|name: &&'static str| Tenant(name));
/// let service = layer.layer(service_fn(|_: &'static str| async {
///     Ok::<_, std::convert::Infallible>(get::<Tenant>())
/// }));
/// let seen = futures::executor::block_on(service.oneshot("acme")).unwrap();
/// assert_eq!(seen, Some(Tenant("acme")));
/// ```
#[derive(Clone)]
pub struct StoreLayer<M> {
    make: M,
}

impl<M> StoreLayer<M> {
    /// A layer that installs `make(&request)` for each request.
    ///
    /// `make` must be `Fn(&Request) -> T + Clone` with
    /// `T: Clone + Send + 'static` (the bounds of
    /// [`with_store`](crate::WithStore::with_store)); they are checked when
    /// the layered service is called.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::adapters::tower::StoreLayer;
    ///
    /// #[derive(Clone)]
    /// struct RequestId(u64);
    ///
    /// let layer = StoreLayer::new(|id: &u64| RequestId(*id));
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn new(make: M) -> Self {
        StoreLayer { make }
    }
}

impl<M> fmt::Debug for StoreLayer<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreLayer")
            .field("make", &core::any::type_name::<M>())
            .finish()
    }
}

impl<S, M: Clone> Layer<S> for StoreLayer<M> {
    type Service = StoreService<S, M>;

    fn layer(&self, inner: S) -> StoreService<S, M> {
        StoreService::new(inner, self.make.clone())
    }
}

/// The [`Service`] made by [`StoreLayer`]: calls `inner` with
/// `make(&request)` installed.
///
/// Its response future is a [`Scoped`]: the inner service's future with the
/// store. `poll_ready` is the inner service's.
///
/// # Panics
///
/// `call` panics when `make` panics, before the inner service is called:
/// the request fails as it would if the inner service had panicked (a
/// panic-catching layer outside, such as tower-http's `CatchPanic`, turns it
/// into an error response). No store is left installed.
///
/// # Examples
///
/// ```
/// use async_local_storage::{adapters::tower::StoreService, get};
/// use tower::{service_fn, ServiceExt};
///
/// let service = StoreService::new(
///     service_fn(|n: u8| async move { Ok::<_, ()>((n, get::<char>())) }),
///     |n: &u8| char::from(b'a' + n),
/// );
/// let reply = futures::executor::block_on(service.oneshot(2));
/// assert_eq!(reply, Ok((2, Some('c'))));
/// ```
#[derive(Clone)]
pub struct StoreService<S, M> {
    inner: S,
    make: M,
}

impl<S, M> StoreService<S, M> {
    /// Wraps `inner` so that each request runs with `make(&request)`
    /// installed (what [`StoreLayer::layer`](Layer::layer) does).
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::adapters::tower::StoreService;
    ///
    /// use async_local_storage::get;
    /// use tower::{service_fn, ServiceExt};
    ///
    /// let inner = service_fn(|n: u32| async move { Ok::<_, ()>(get::<u32>().map(|s| s + n)) });
    /// let service = StoreService::new(inner, |n: &u32| n * 10);
    /// assert_eq!(futures::executor::block_on(service.oneshot(4)), Ok(Some(44)));
    /// ```
    #[must_use]
    pub fn new(inner: S, make: M) -> Self {
        StoreService { inner, make }
    }

    /// Borrows the inner service.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::adapters::tower::StoreService;
    ///
    /// let service = StoreService::new(7u8, |_: &()| 1u32);
    /// assert_eq!(*service.get_ref(), 7);
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Mutably borrows the inner service.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::adapters::tower::StoreService;
    ///
    /// let mut service = StoreService::new(7u8, |_: &()| 1u32);
    /// *service.get_mut() += 1;
    /// assert_eq!(*service.get_ref(), 8);
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::adapters::tower::StoreService;
    ///
    /// let service = StoreService::new(7u8, |_: &()| 1u32);
    /// assert_eq!(service.into_inner(), 7);
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: fmt::Debug, M> fmt::Debug for StoreService<S, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreService")
            .field("inner", &self.inner)
            .field("make", &core::any::type_name::<M>())
            .finish()
    }
}

impl<S, M, Req, T> Service<Req> for StoreService<S, M>
where
    S: Service<Req>,
    M: Fn(&Req) -> T,
    T: Clone + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Scoped<S::Future, T>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        let store = (self.make)(&request);
        let inner = &mut self.inner;
        // The inner `call` (where layers below build spans, pick routes...)
        // sees the store too, not only its future.
        let future = scope(store.clone(), || inner.call(request));
        future.with_store(store)
    }
}
