//! The lab (`infraflux-lab up --dir …`) as the Proxmox VM acceptance tests use it: one lab
//! process per test, its provider block, and its control endpoint.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

use crate::{Work, bin_dir};

/// A lab process; `down` on drop.
pub struct Lab {
    dir: tempfile::TempDir,
    child: Child,
    /// `lab.json`.
    pub info: Json,
}

impl Lab {
    pub fn up() -> Lab {
        Self::up_with(&[])
    }

    /// A lab started with extra `up` arguments (e.g. `--talos-version v1.14.0`).
    pub fn up_with(args: &[&str]) -> Lab {
        let dir = tempfile::Builder::new()
            .prefix("infraflux-lab-")
            .tempdir()
            .expect("tempdir");
        let child = Command::new(Self::bin())
            .args(["up", "--dir"])
            .arg(dir.path())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start infraflux-lab (`make test` builds it)");
        let mut lab = Lab {
            dir,
            child,
            info: Json::Null,
        };
        let json_path = lab.dir.path().join("lab.json");
        let started = Instant::now();
        loop {
            if let Some(j) = std::fs::read(&json_path)
                .ok()
                .and_then(|b| serde_json::from_slice::<Json>(&b).ok())
            {
                lab.info = j;
                return lab;
            }
            if let Ok(Some(st)) = lab.child.try_wait() {
                panic!("infraflux-lab exited early: {st}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "lab.json did not appear"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn bin() -> PathBuf {
        bin_dir().join("infraflux-lab")
    }

    pub fn pve(&self, k: &str) -> String {
        self.info["pve"][k].as_str().unwrap_or_default().to_owned()
    }

    /// The provider block for this lab; `token` overrides the API token.
    pub fn provider(&self, token: Option<&str>) -> String {
        let token = token.map_or_else(
            || format!("{}={}", self.pve("token_id"), self.pve("token_secret")),
            str::to_owned,
        );
        format!(
            "terraform {{\n  required_providers {{\n    infraflux = {{ source = \"infraflux/infraflux\" }}\n  }}\n}}\n\nprovider \"infraflux\" {{\n  proxmox {{\n    endpoint    = {}\n    api_token   = {}\n    ca_cert_pem = {}\n  }}\n}}\n",
            json!(self.pve("endpoint")),
            json!(token),
            self.info["ca_cert_pem"]
        )
    }

    /// One request to the control endpoint (plain HTTP/1.0 on loopback).
    /// Plan (which refreshes) and check what it cost: one shared `/cluster/resources` and one
    /// config GET per VM, nothing else.
    pub fn assert_refresh_cost(&self, w: &Work, vms: u64) {
        self.control("POST", "/requests/reset", None);
        w.assert_plan_empty();
        let req = self.control("GET", "/requests", None);
        assert_eq!(
            req["by_route"]["GET /nodes/{node}/qemu/{vmid}/config"], vms,
            "{req}"
        );
        assert_eq!(req["by_route"]["GET /cluster/resources"], 1, "{req}");
        assert_eq!(req["total"], vms + 1, "{req}");
    }

    pub fn control(&self, method: &str, path: &str, body: Option<&Json>) -> Json {
        let ep = self.info["control"]["endpoint"]
            .as_str()
            .unwrap_or_default();
        let addr = ep.trim_start_matches("http://").trim_end_matches('/');
        let mut s = TcpStream::connect(addr).expect("connect to the lab control endpoint");
        let body = body.map(Json::to_string).unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("send");
        let mut resp = String::new();
        s.read_to_string(&mut resp).expect("read");
        let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
        assert!(head.contains(" 200"), "{method} {path}: {head}\n{body}");
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{method} {path}: {e}: {body}"))
    }

    /// Every VM of the lab (templates included).
    pub fn vms(&self) -> Vec<Json> {
        self.control("GET", "/state", None)["vms"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub fn vm(&self, vmid: i64) -> Json {
        self.vms()
            .into_iter()
            .find(|v| v["vmid"] == vmid)
            .unwrap_or_else(|| panic!("VM {vmid} not in the lab"))
    }

    /// VM ids of the non-template VMs.
    pub fn guests(&self) -> Vec<i64> {
        self.vms()
            .iter()
            .filter(|v| v["template"] != true && v["template"] != 1)
            .filter_map(|v| v["vmid"].as_i64())
            .collect()
    }

    /// After a destroy: the lab holds its two templates and nothing else.
    pub fn assert_only_templates_left(&self) {
        let left: Vec<i64> = self
            .vms()
            .iter()
            .filter_map(|v| v["vmid"].as_i64())
            .collect();
        assert_eq!(left, vec![9000, 9001], "only the templates are left");
    }

    /// The lab's Talos nodes (`GET /talos/nodes`).
    pub fn talos_nodes(&self) -> Vec<Json> {
        self.control("GET", "/talos/nodes", None)["nodes"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The Talos node at `address`.
    pub fn talos_node(&self, address: &str) -> Json {
        self.talos_nodes()
            .into_iter()
            .find(|n| n["address"] == address)
            .unwrap_or_else(|| panic!("no Talos node at {address}"))
    }

    /// `terraform.tfvars.json` for the stack in `terraform/` against this lab.
    pub fn stack_vars(
        &self,
        control_planes: &[(&str, String)],
        workers: &[(&str, String)],
    ) -> String {
        let map = |m: &[(&str, String)]| -> Json {
            m.iter()
                .map(|(k, v)| ((*k).to_owned(), Json::from(v.as_str())))
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        json!({
            "proxmox_endpoint": self.pve("endpoint"),
            "proxmox_api_token": format!("{}={}", self.pve("token_id"), self.pve("token_secret")),
            "proxmox_ca_cert_pem": self.info["ca_cert_pem"],
            "talos_image": self.pve("talos_image_volid"),
            "control_planes": map(control_planes),
            "workers": map(workers),
            // The Talos tests stop at the cluster; the Cilium tests add it themselves.
            "install_platform": false,
        })
        .to_string()
    }

    /// Power tasks (start, stop, shutdown, reboot) the lab ran so far.
    pub fn power_tasks(&self) -> usize {
        self.control("GET", "/state", None)["tasks"]
            .as_array()
            .map(|ts| {
                ts.iter()
                    .filter(|t| {
                        matches!(
                            t["type"].as_str(),
                            Some("qmstart" | "qmstop" | "qmshutdown" | "qmreboot")
                        )
                    })
                    .count()
            })
            .unwrap_or(0)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new(Self::bin())
            .args(["down", "--dir"])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The VM's config value as the lab will apply it (pending changes first).
pub fn effective(vm: &Json, key: &str) -> String {
    let v = if vm["pending"][key].is_null() {
        &vm["config"][key]
    } else {
        &vm["pending"][key]
    };
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}
