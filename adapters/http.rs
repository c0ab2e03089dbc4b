//! HTTP: a per-request store that also covers the response body.
//!
//! [`HttpStoreLayer::new(make)`](HttpStoreLayer::new) is
//! [`StoreLayer`](crate::adapters::tower::StoreLayer) for
//! [`http::Request`]s, plus one thing: the response body is
//! wrapped in a [`StoreBody`] that installs the same store every time the
//! server polls it for a frame, and while it is dropped. A streaming body,
//! server-sent events or trailers are produced after the handler has
//! returned, outside its future; with this layer they still see the request's
//! stores, and so does everything they log.
//!
//! ```text
//! request ──> make(&request) ──> T
//!             inner.call(request)            (T installed)
//!             response future, every poll    (T installed)
//!             response body, every poll_frame (a clone of T installed)
//! ```
//!
//! # Examples
//!
//! With axum:
//!
//! ```
//! use async_local_storage::{adapters::http::HttpStoreLayer, get};
//! use axum::{routing::get as route, Router};
//!
//! #[derive(Clone, Debug)]
//! struct RequestId(String);
//!
//! impl<B> From<&http::Request<B>> for RequestId {
//!     fn from(request: &http::Request<B>) -> Self {
//!         let id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok());
//!         RequestId(id.unwrap_or("-").to_owned())
//!     }
//! }
//!
//! async fn hello() -> String {
//!     format!("hello from {:?}", get::<RequestId>())
//! }
//!
//! let app: Router = Router::new()
//!     .route("/", route(hello))
//!     .layer(HttpStoreLayer::new(|req: &http::Request<_>| RequestId::from(req)));
//! # use tower::ServiceExt;
//! # use http_body_util::BodyExt;
//! # let request = http::Request::builder().header("x-request-id", "r-1").body(axum::body::Body::empty()).unwrap();
//! # let body = futures::executor::block_on(async {
//! #     app.oneshot(request).await.unwrap().into_body().collect().await.unwrap().to_bytes()
//! # });
//! # assert_eq!(body, "hello from Some(RequestId(\"r-1\"))");
//! ```
//!
//! A streaming body sees the store at every chunk:
//!
//! ```
//! use async_local_storage::{adapters::http::HttpStoreLayer, get};
//! use axum::{body::Body, routing::get as route, Router};
//! use futures::StreamExt;
//! use http_body_util::BodyExt;
//! use tower::ServiceExt;
//!
//! #[derive(Clone)]
//! struct RequestId(u64);
//!
//! async fn stream() -> Body {
//!     // Each chunk is made when the server polls the body, after `stream`
//!     // has returned.
//!     let chunks = futures::stream::iter(0..3).map(|i| {
//!         let id = get::<RequestId>().map_or(0, |id| id.0);
//!         Ok::<_, std::convert::Infallible>(format!("chunk {i} of request {id}\n"))
//!     });
//!     Body::from_stream(chunks)
//! }
//!
//! let app: Router = Router::new()
//!     .route("/", route(stream))
//!     .layer(HttpStoreLayer::new(|_: &http::Request<_>| RequestId(42)));
//! let response = futures::executor::block_on(app.oneshot(http::Request::new(Body::empty()))).unwrap();
//! let text = futures::executor::block_on(response.into_body().collect()).unwrap().to_bytes();
//! assert_eq!(text, "chunk 0 of request 42\nchunk 1 of request 42\nchunk 2 of request 42\n");
//! ```

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use ::http::{Request, Response};
use futures_core::Stream;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::adapters::tower::StoreService;
use crate::{Scoped, WithStore};

/// A [`Layer`] that runs each HTTP request, response body included, with a
/// store built from the request.
///
/// `make(&request)` is called once per request. Its value is visible to the
/// inner service's `call`, to every poll of the response future, and to every
/// `poll_frame` of the response body (and while each is dropped): the body
/// gets its own clone of the value when the response is ready. Errors pass
/// through unchanged; responses are `Response<StoreBody<B, T>>`.
///
/// # Examples
///
/// ```
/// use async_local_storage::{adapters::http::HttpStoreLayer, get};
/// use axum::{routing::get as route, Router};
///
/// #[derive(Clone)]
/// struct Path(String);
///
/// let app: Router = Router::new()
///     .route("/{*rest}", route(|| async { get::<Path>().unwrap().0 }))
///     .layer(HttpStoreLayer::new(|req: &http::Request<_>| Path(req.uri().path().to_owned())));
/// # let _ = app;
/// ```
#[derive(Clone)]
pub struct HttpStoreLayer<M> {
    make: M,
}

impl<M> HttpStoreLayer<M> {
    /// A layer that installs `make(&request)` for each request and its
    /// response body.
    ///
    /// `make` must be `Fn(&http::Request<B>) -> T + Clone` with
    /// `T: Clone + Send + 'static`; they are checked when the layered service
    /// is called.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::adapters::http::HttpStoreLayer;
    ///
    /// #[derive(Clone)]
    /// struct Method(http::Method);
    ///
    /// let layer = HttpStoreLayer::new(|req: &http::Request<()>| Method(req.method().clone()));
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn new(make: M) -> Self {
        HttpStoreLayer { make }
    }
}

impl<M> fmt::Debug for HttpStoreLayer<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpStoreLayer")
            .field("make", &core::any::type_name::<M>())
            .finish()
    }
}

impl<S, M: Clone> Layer<S> for HttpStoreLayer<M> {
    type Service = HttpStoreService<S, M>;

    fn layer(&self, inner: S) -> HttpStoreService<S, M> {
        HttpStoreService::new(inner, self.make.clone())
    }
}

/// The [`Service`] made by [`HttpStoreLayer`].
///
/// # Panics
///
/// `call` panics when `make` panics, before the inner service is called:
/// the request fails as it would if the inner service had panicked (behind
/// a panic-catching layer such as tower-http's `CatchPanic`, with that
/// layer's error response). No store is left installed.
///
/// # Examples
///
/// ```
/// use async_local_storage::{adapters::http::HttpStoreService, get};
/// use http_body_util::{BodyExt, Full};
/// use tower::{service_fn, ServiceExt};
///
/// let inner = service_fn(|_: http::Request<()>| async {
///     let text = format!("{:?}", get::<u16>());
///     Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(axum::body::Bytes::from(text))))
/// });
/// let service = HttpStoreService::new(inner, |_: &http::Request<()>| 443u16);
/// let response = futures::executor::block_on(service.oneshot(http::Request::new(()))).unwrap();
/// let body = futures::executor::block_on(response.into_body().collect()).unwrap().to_bytes();
/// assert_eq!(body, "Some(443)");
/// ```
#[derive(Clone)]
pub struct HttpStoreService<S, M> {
    inner: StoreService<S, M>,
}

impl<S, M> HttpStoreService<S, M> {
    /// Wraps `inner` (what [`HttpStoreLayer::layer`](Layer::layer) does).
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::adapters::http::HttpStoreService;
    ///
    /// let service = HttpStoreService::new((), |_: &http::Request<()>| 1u8);
    /// # let _ = service;
    /// ```
    #[must_use]
    pub fn new(inner: S, make: M) -> Self {
        HttpStoreService {
            inner: StoreService::new(inner, make),
        }
    }

    /// Borrows the inner service.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::adapters::http::HttpStoreService;
    ///
    /// let service = HttpStoreService::new("inner", |_: &http::Request<()>| 1u8);
    /// assert_eq!(*service.get_ref(), "inner");
    /// ```
    pub fn get_ref(&self) -> &S {
        self.inner.get_ref()
    }

    /// Mutably borrows the inner service.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::adapters::http::HttpStoreService;
    ///
    /// let mut service = HttpStoreService::new(1u8, |_: &http::Request<()>| 1u8);
    /// *service.get_mut() = 2;
    /// assert_eq!(*service.get_ref(), 2);
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        self.inner.get_mut()
    }

    /// Unwraps the inner service.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::adapters::http::HttpStoreService;
    ///
    /// let service = HttpStoreService::new("inner", |_: &http::Request<()>| 1u8);
    /// assert_eq!(service.into_inner(), "inner");
    /// ```
    pub fn into_inner(self) -> S {
        self.inner.into_inner()
    }
}

impl<S: fmt::Debug, M> fmt::Debug for HttpStoreService<S, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpStoreService")
            .field("inner", self.inner.get_ref())
            .field("make", &core::any::type_name::<M>())
            .finish()
    }
}

impl<S, M, ReqBody, ResBody, T> Service<Request<ReqBody>> for HttpStoreService<S, M>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    M: Fn(&Request<ReqBody>) -> T,
    T: Clone + Send + 'static,
{
    type Response = Response<StoreBody<ResBody, T>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, T>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        ResponseFuture {
            inner: self.inner.call(request),
        }
    }
}

pin_project! {
    /// The response future of [`HttpStoreService`]: the inner service's
    /// future, polled with the store installed, whose response body is then
    /// wrapped in a [`StoreBody`] holding a clone of the store.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::adapters::http::{HttpStoreService, ResponseFuture};
    /// use tower::{service_fn, Service};
    ///
    /// let mut service = HttpStoreService::new(
    ///     service_fn(|_: http::Request<()>| async { Ok::<_, ()>(http::Response::new(())) }),
    ///     |_: &http::Request<()>| 1u8,
    /// );
    /// let future: ResponseFuture<_, u8> = service.call(http::Request::new(()));
    /// let response = futures::executor::block_on(future).unwrap();
    /// assert_eq!(*response.body().value(), 1);
    /// ```
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct ResponseFuture<F, T> {
        #[pin]
        inner: Scoped<F, T>,
    }
}

impl<F, T> fmt::Debug for ResponseFuture<F, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("inner", &core::any::type_name::<F>())
            .field("store", &core::any::type_name::<T>())
            .finish()
    }
}

impl<F, B, E, T> Future for ResponseFuture<F, T>
where
    F: Future<Output = Result<Response<B>, E>>,
    T: Clone + Send + 'static,
{
    type Output = Result<Response<StoreBody<B, T>>, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut inner = self.project().inner;
        let result = match inner.as_mut().poll(cx) {
            Poll::Ready(result) => result,
            Poll::Pending => return Poll::Pending,
        };
        let store = inner.as_ref().get_ref().value();
        Poll::Ready(result.map(|response| response.map(|body| StoreBody::new(body, store.clone()))))
    }
}

pin_project! {
    /// An HTTP body polled with a store installed: every
    /// [`poll_frame`](Body::poll_frame) of `B` (and its drop) sees the value
    /// of type `T`. [`size_hint`](Body::size_hint) and
    /// [`is_end_stream`](Body::is_end_stream) are `B`'s.
    ///
    /// [`HttpStoreLayer`] wraps every response body in one; build one
    /// yourself to carry stores into a body made elsewhere.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::{adapters::http::StoreBody, get};
    /// use axum::body::Bytes;
    /// use futures::StreamExt;
    /// use http_body_util::{BodyExt, StreamBody};
    ///
    /// // Each frame is made when the body is polled.
    /// let frames = futures::stream::iter(0..2).map(|_| {
    ///     let text = format!("{:?};", get::<u32>());
    ///     Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(text)))
    /// });
    /// let body = StoreBody::new(StreamBody::new(frames), 9u32);
    /// let bytes = futures::executor::block_on(body.collect()).unwrap().to_bytes();
    /// assert_eq!(bytes, "Some(9);Some(9);");
    /// ```
    pub struct StoreBody<B, T> {
        #[pin]
        inner: Scoped<Frames<B>, T>,
    }
}

pin_project! {
    /// A body seen as a stream of frames, so that `Scoped` can poll it.
    struct Frames<B> {
        #[pin]
        body: B,
    }
}

impl<B: Body> Stream for Frames<B> {
    type Item = Result<Frame<B::Data>, B::Error>;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.project().body.poll_frame(cx)
    }
}

impl<B, T: Clone + Send + 'static> StoreBody<B, T> {
    /// Wraps `body` so that `value` is installed while it is polled or
    /// dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::adapters::http::StoreBody;
    ///
    /// let body = StoreBody::new(String::from("hello"), 1u8);
    /// assert_eq!(body.get_ref(), "hello");
    /// ```
    #[must_use]
    pub fn new(body: B, value: T) -> Self {
        StoreBody {
            inner: Frames { body }.with_store(value),
        }
    }
}

impl<B, T> StoreBody<B, T> {
    /// Borrows the wrapped body.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::adapters::http::StoreBody;
    ///
    /// let body = StoreBody::new(String::from("hello"), 1u8);
    /// assert_eq!(body.get_ref().len(), 5);
    /// ```
    pub fn get_ref(&self) -> &B {
        &self.inner.inner().body
    }

    /// The store installed while the body is polled.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::adapters::http::StoreBody;
    ///
    /// let body = StoreBody::new(String::new(), 7u8);
    /// assert_eq!(*body.value(), 7);
    /// ```
    pub fn value(&self) -> &T {
        self.inner.value()
    }

    /// Unwraps the body and the store.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::adapters::http::StoreBody;
    ///
    /// let (body, value) = StoreBody::new(String::from("hi"), 7u8).into_parts();
    /// assert_eq!((body.as_str(), value), ("hi", 7));
    /// ```
    pub fn into_parts(self) -> (B, T) {
        let (frames, value) = self.inner.into_parts();
        (frames.body, value)
    }
}

impl<B: Body, T: 'static> Body for StoreBody<B, T> {
    type Data = B::Data;
    type Error = B::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        self.project().inner.poll_next(cx)
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        self.get_ref().is_end_stream()
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        self.get_ref().size_hint()
    }
}

impl<B: fmt::Debug, T: fmt::Debug> fmt::Debug for StoreBody<B, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreBody")
            .field("body", self.get_ref())
            .field("value", self.value())
            .finish()
    }
}
