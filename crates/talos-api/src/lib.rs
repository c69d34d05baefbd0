//! Generated code for our Talos API subset (`proto/talos`), shared by the apid client
//! (infraflux-talos) and the lab's simulated nodes. Laid out by protobuf package so the generated
//! cross-package paths (`super::common::…`) resolve.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

pub mod google {
    pub mod rpc {
        include!(concat!(env!("OUT_DIR"), "/google.rpc.rs"));
    }
}

pub mod common {
    include!(concat!(env!("OUT_DIR"), "/common.rs"));
}

pub mod machine {
    include!(concat!(env!("OUT_DIR"), "/machine.rs"));
}

pub mod cosi {
    pub mod resource {
        include!(concat!(env!("OUT_DIR"), "/cosi.resource.rs"));
    }
}

pub mod talos {
    pub mod resource {
        pub mod definitions {
            pub mod enums {
                include!(concat!(
                    env!("OUT_DIR"),
                    "/talos.resource.definitions.enums.rs"
                ));
            }
            pub mod runtime {
                include!(concat!(
                    env!("OUT_DIR"),
                    "/talos.resource.definitions.runtime.rs"
                ));
            }
        }
    }
}
