//! A real gRPC server and client (tonic) for tests: a unary method and a
//! bidirectional streaming method, both answering with the server's name.
//!
//! Service `gatehouse.test.Echo`:
//! * `Unary(EchoMessage) -> EchoMessage`: echoes the message. The message
//!   `fail` answers `INVALID_ARGUMENT` with the message `requested
//!   failure`; `sleep:<ms>` waits that long first.
//! * `Chat(stream EchoMessage) -> stream EchoMessage`: answers each
//!   message as it arrives.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use http::uri::PathAndQuery;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tonic_prost::ProstCodec;

/// The message both methods exchange.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct EchoMessage {
    /// The text sent, echoed back.
    #[prost(string, tag = "1")]
    pub message: String,
    /// The name of the server that answered.
    #[prost(string, tag = "2")]
    pub backend: String,
}

/// Path of the unary method.
pub const UNARY: &str = "/gatehouse.test.Echo/Unary";
/// Path of the bidirectional streaming method.
pub const CHAT: &str = "/gatehouse.test.Echo/Chat";

/// A running gRPC server (HTTP/2 with prior knowledge); stops when dropped.
#[derive(Debug)]
pub struct GrpcServer {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

#[derive(Clone)]
struct Unary(Arc<String>);

impl tonic::server::UnaryService<EchoMessage> for Unary {
    type Response = EchoMessage;
    type Future = Pin<Box<dyn Future<Output = Result<Response<EchoMessage>, Status>> + Send>>;

    fn call(&mut self, request: Request<EchoMessage>) -> Self::Future {
        let name = self.0.clone();
        Box::pin(async move {
            let message = request.into_inner().message;
            if message == "fail" {
                return Err(Status::invalid_argument("requested failure"));
            }
            if let Some(ms) = message.strip_prefix("sleep:").and_then(|m| m.parse().ok()) {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            Ok(Response::new(EchoMessage {
                message,
                backend: name.to_string(),
            }))
        })
    }
}

#[derive(Clone)]
struct Chat(Arc<String>);

type ReplyStream = Pin<Box<dyn Stream<Item = Result<EchoMessage, Status>> + Send>>;

impl tonic::server::StreamingService<EchoMessage> for Chat {
    type Response = EchoMessage;
    type ResponseStream = ReplyStream;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ReplyStream>, Status>> + Send>>;

    fn call(&mut self, request: Request<Streaming<EchoMessage>>) -> Self::Future {
        let name = self.0.clone();
        Box::pin(async move {
            let mut incoming = request.into_inner();
            let (tx, rx) = mpsc::channel(16);
            tokio::spawn(async move {
                while let Some(next) = incoming.next().await {
                    let reply = next.map(|m| EchoMessage {
                        message: m.message,
                        backend: name.to_string(),
                    });
                    if tx.send(reply).await.is_err() {
                        break;
                    }
                }
            });
            Ok(Response::new(
                Box::pin(ReceiverStream::new(rx)) as ReplyStream
            ))
        })
    }
}

impl GrpcServer {
    /// Starts a server named `name` on a free loopback port.
    pub async fn start(name: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a free port");
        let addr = listener.local_addr().expect("bound");
        let (stop, mut stopped) = watch::channel(false);
        let name = Arc::new(name.to_owned());
        tokio::spawn(async move {
            let builder = auto::Builder::new(TokioExecutor::new()).http2_only();
            loop {
                let stream = tokio::select! {
                    _ = stopped.changed() => return,
                    accepted = listener.accept() => match accepted {
                        Ok((s, _)) => s,
                        Err(_) => continue,
                    },
                };
                let name = name.clone();
                let service = service_fn(move |req: http::Request<Incoming>| {
                    let name = name.clone();
                    async move {
                        let mut grpc =
                            tonic::server::Grpc::new(
                                ProstCodec::<EchoMessage, EchoMessage>::default(),
                            );
                        let resp = match req.uri().path() {
                            UNARY => grpc.unary(Unary(name), req).await,
                            CHAT => grpc.streaming(Chat(name), req).await,
                            _ => Status::unimplemented("no such method").into_http(),
                        };
                        Ok::<_, Infallible>(resp)
                    }
                });
                let conn = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .into_owned();
                tokio::spawn(conn);
            }
        });
        Self { addr, stop }
    }
}

/// A gRPC client for the test service, over HTTP/2 with prior knowledge
/// to `addr`, sending `authority` as the `:authority` (the virtual host).
#[derive(Debug, Clone)]
pub struct GrpcClient {
    inner: tonic::client::Grpc<tonic::transport::Channel>,
}

impl GrpcClient {
    /// Connects to `addr` for the virtual host `authority`.
    pub async fn connect(addr: SocketAddr, authority: &str) -> Result<Self, String> {
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| e.to_string())?
            .origin(
                format!("http://{authority}")
                    .parse()
                    .map_err(|e: http::uri::InvalidUri| e.to_string())?,
            );
        let channel = endpoint.connect().await.map_err(|e| format!("{e:?}"))?;
        Ok(Self {
            inner: tonic::client::Grpc::new(channel),
        })
    }

    /// Calls `Unary`.
    pub async fn unary(&mut self, message: &str) -> Result<EchoMessage, Status> {
        self.inner
            .ready()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let request = Request::new(EchoMessage {
            message: message.to_owned(),
            backend: String::new(),
        });
        let codec = ProstCodec::<EchoMessage, EchoMessage>::default();
        self.inner
            .unary(request, PathAndQuery::from_static(UNARY), codec)
            .await
            .map(Response::into_inner)
    }

    /// Opens `Chat`: messages sent on the returned sender are answered on
    /// the returned stream as they arrive.
    pub async fn chat(
        &mut self,
    ) -> Result<(mpsc::Sender<EchoMessage>, Streaming<EchoMessage>), Status> {
        self.inner
            .ready()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let (tx, rx) = mpsc::channel(16);
        let codec = ProstCodec::<EchoMessage, EchoMessage>::default();
        let response = self
            .inner
            .streaming(
                Request::new(ReceiverStream::new(rx)),
                PathAndQuery::from_static(CHAT),
                codec,
            )
            .await?;
        Ok((tx, response.into_inner()))
    }
}
