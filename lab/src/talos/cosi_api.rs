//! `cosi.resource.State` reads of a node: MachineStatus, Version and (admin only) MachineConfig.

use std::pin::Pin;
use std::sync::Arc;

use prost::Message;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::Talos;
use super::authz::{self, Caller};
use super::node::Node;
use super::proto::cosi::resource as cosi;
use super::proto::talos::resource::definitions::runtime as rt;

/// `cosi.resource.State` (reads) of one node.
pub struct CosiApi {
    talos: Arc<Talos>,
    node: Arc<Node>,
}

impl CosiApi {
    pub fn new(talos: Arc<Talos>, node: Arc<Node>) -> Self {
        Self { talos, node }
    }

    /// The resources of a (namespace, type), for a caller allowed to see them.
    fn resources(
        &self,
        caller: &Caller,
        ns: &str,
        ty: &str,
    ) -> Result<Vec<cosi::Resource>, Status> {
        let st = self.node.state();
        let meta = |id: &str, version: u64, owner: &str| cosi::Metadata {
            namespace: ns.to_string(),
            r#type: ty.to_string(),
            id: id.to_string(),
            version: version.to_string(),
            owner: owner.to_string(),
            phase: "running".into(),
            ..Default::default()
        };
        match (ns, ty) {
            ("runtime", "MachineStatuses.runtime.talos.dev") => {
                let ready = self.node.ready(&st);
                let spec = rt::MachineStatusSpec {
                    stage: st.stage.proto() as i32,
                    status: Some(rt::MachineStatusStatus {
                        ready,
                        unmet_conditions: Vec::new(),
                    }),
                };
                let yaml = format!(
                    "stage: {}\nstatus:\n    ready: {ready}\n    unmetConditions: []\n",
                    st.stage.name()
                );
                Ok(vec![resource(
                    meta(
                        "machine",
                        st.status_version,
                        "runtime.MachineStatusController",
                    ),
                    spec.encode_to_vec(),
                    yaml,
                )])
            }
            ("runtime", "Versions.runtime.talos.dev") => {
                let v = self.talos.version_of(&st);
                let spec = rt::VersionSpec { version: v.clone() };
                Ok(vec![resource(
                    meta("version", 1, "runtime.VersionController"),
                    spec.encode_to_vec(),
                    format!("version: {v}\n"),
                )])
            }
            ("config", "MachineConfigs.config.talos.dev") => {
                // Sensitive: only admins read it.
                if !caller.roles.contains(&authz::Role::Admin) {
                    return Err(authz::denied());
                }
                Ok(st
                    .disk
                    .config
                    .iter()
                    .map(|c| {
                        resource(
                            meta("v1alpha1", 1, ""),
                            c.raw.clone(),
                            String::from_utf8_lossy(&c.raw).into_owned(),
                        )
                    })
                    .collect())
            }
            _ => Err(Status::not_found(format!(
                "lab: resource type {ty:?} in namespace {ns:?} is not simulated"
            ))),
        }
    }

    fn gate<T>(&self, req: &Request<T>, rpc: &str) -> Result<Caller, Status> {
        let caller = authz::caller(req)?;
        authz::check(&caller, &format!("/cosi.resource.State/{rpc}"))?;
        Ok(caller)
    }
}

fn resource(metadata: cosi::Metadata, proto: Vec<u8>, yaml: String) -> cosi::Resource {
    cosi::Resource {
        metadata: Some(metadata),
        spec: Some(cosi::Spec {
            proto_spec: proto,
            yaml_spec: yaml,
        }),
    }
}

type ListStream = Pin<Box<dyn Stream<Item = Result<cosi::ListResponse, Status>> + Send>>;

#[tonic::async_trait]
impl cosi::state_server::State for CosiApi {
    async fn get(
        &self,
        req: Request<cosi::GetRequest>,
    ) -> Result<Response<cosi::GetResponse>, Status> {
        let caller = self.gate(&req, "Get")?;
        let r = req.into_inner();
        let found = self
            .resources(&caller, &r.namespace, &r.r#type)?
            .into_iter()
            .find(|res| res.metadata.as_ref().is_some_and(|m| m.id == r.id));
        match found {
            Some(resource) => Ok(Response::new(cosi::GetResponse {
                resource: Some(resource),
            })),
            None => Err(Status::not_found(format!(
                "resource {}({}/{}@undefined) doesn't exist",
                r.r#type, r.namespace, r.id
            ))),
        }
    }

    type ListStream = ListStream;

    async fn list(
        &self,
        req: Request<cosi::ListRequest>,
    ) -> Result<Response<Self::ListStream>, Status> {
        let caller = self.gate(&req, "List")?;
        let r = req.into_inner();
        let items: Vec<Result<cosi::ListResponse, Status>> = self
            .resources(&caller, &r.namespace, &r.r#type)?
            .into_iter()
            .map(|resource| {
                Ok(cosi::ListResponse {
                    resource: Some(resource),
                })
            })
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(items))))
    }
}
