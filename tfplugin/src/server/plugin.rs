//! go-plugin's own services: the controller (graceful shutdown, which spares Terraform a 2 s
//! wait per provider process) and stdio (we log to stderr, so the stream carries nothing).

use std::pin::Pin;

use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::proto::plugin as pb;

/// go-plugin's controller: Terraform asks the plugin to shut down.
pub struct Controller {
    pub shutdown: CancellationToken,
}

#[tonic::async_trait]
impl pb::grpc_controller_server::GrpcController for Controller {
    async fn shutdown(&self, _: Request<pb::Empty>) -> Result<Response<pb::Empty>, Status> {
        tracing::debug!("shutdown requested by Terraform");
        self.shutdown.cancel();
        Ok(Response::new(pb::Empty {}))
    }
}

/// go-plugin's stdio stream, open and empty until shutdown.
pub struct Stdio {
    pub shutdown: CancellationToken,
}

type StdioStream = Pin<Box<dyn futures::Stream<Item = Result<pb::StdioData, Status>> + Send>>;

#[tonic::async_trait]
impl pb::grpc_stdio_server::GrpcStdio for Stdio {
    type StreamStdioStream = StdioStream;
    async fn stream_stdio(&self, _: Request<()>) -> Result<Response<StdioStream>, Status> {
        // Open until shutdown, then end cleanly: go-plugin treats an early end as an error.
        let token = self.shutdown.clone();
        let s = futures::stream::once(async move {
            token.cancelled().await;
            None
        })
        .filter_map(futures::future::ready);
        Ok(Response::new(Box::pin(s)))
    }
}

use futures::StreamExt as _;
