//! Test harness: a lab per test plus a small PVE client.

use std::time::{Duration, Instant};

use infraflux_lab::{Lab, LabOptions};
use reqwest::{Method, StatusCode};
use serde_json::Value;

pub struct T {
    pub lab: Lab,
    pub http: reqwest::Client,
    pub api: String,
    pub token: String,
    pub control: String,
}

pub struct Resp {
    pub status: StatusCode,
    pub reason: Option<String>,
    pub body: Value,
}

impl Resp {
    #[track_caller]
    pub fn ok(&self) -> &Value {
        assert_eq!(self.status, StatusCode::OK, "body: {}", self.body);
        &self.body["data"]
    }

    pub fn message(&self) -> String {
        self.body["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

pub fn client_for(ca_pem: &str) -> reqwest::Client {
    let cert = reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("CA pem");
    reqwest::Client::builder()
        .tls_certs_only([cert])
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

impl T {
    pub async fn start() -> T {
        Self::with(LabOptions::default()).await
    }

    pub async fn with(opts: LabOptions) -> T {
        let lab = Lab::start(opts).await.expect("lab starts");
        let info = lab.info().clone();
        T {
            http: client_for(&info.ca_cert_pem),
            api: info.pve.api_url.clone(),
            token: format!(
                "PVEAPIToken={}={}",
                info.pve.token_id, info.pve.token_secret
            ),
            control: info.control.endpoint.clone(),
            lab,
        }
    }

    pub async fn call_as(
        &self,
        auth: &str,
        method: Method,
        path: &str,
        params: &[(&str, &str)],
    ) -> Resp {
        let url = format!("{}{}", self.api, path);
        let mut rb = self.http.request(method.clone(), &url);
        if !auth.is_empty() {
            rb = rb.header("Authorization", auth);
        }
        rb = if method == Method::GET || method == Method::DELETE {
            rb.query(params)
        } else {
            rb.form(params)
        };
        let r = rb.send().await.expect("request sent");
        to_resp(r).await
    }

    pub async fn call(&self, method: Method, path: &str, params: &[(&str, &str)]) -> Resp {
        self.call_as(&self.token.clone(), method, path, params)
            .await
    }

    pub async fn get(&self, path: &str, params: &[(&str, &str)]) -> Resp {
        self.call(Method::GET, path, params).await
    }

    pub async fn post(&self, path: &str, params: &[(&str, &str)]) -> Resp {
        self.call(Method::POST, path, params).await
    }

    pub async fn put(&self, path: &str, params: &[(&str, &str)]) -> Resp {
        self.call(Method::PUT, path, params).await
    }

    pub async fn delete(&self, path: &str, params: &[(&str, &str)]) -> Resp {
        self.call(Method::DELETE, path, params).await
    }

    /// Wait for a task to stop; returns its status object.
    pub async fn wait_task(&self, upid: &str) -> Value {
        let node = upid.split(':').nth(1).expect("upid node").to_string();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = self
                .get(&format!("/nodes/{node}/tasks/{upid}/status"), &[])
                .await;
            let d = r.ok().clone();
            if d["status"] == "stopped" {
                return d;
            }
            assert!(Instant::now() < deadline, "task {upid} did not finish");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Run a task-returning call and require exitstatus OK.
    pub async fn task_ok(&self, r: Resp) -> Value {
        let upid = r.ok().as_str().expect("UPID").to_string();
        let st = self.wait_task(&upid).await;
        assert_eq!(st["exitstatus"], "OK", "task {upid}: {st}");
        st
    }

    pub async fn control_get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{}", self.control, path))
            .send()
            .await
            .expect("control")
            .json()
            .await
            .expect("control json")
    }

    pub async fn control_post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let r = self
            .http
            .post(format!("{}{}", self.control, path))
            .json(body)
            .send()
            .await
            .expect("control");
        let s = r.status();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    /// Clone the template 9000 to `newid` and wait for it.
    pub async fn clone_template(&self, newid: u32, name: &str) {
        let id = newid.to_string();
        let r = self
            .post(
                "/nodes/pve1/qemu/9000/clone",
                &[("newid", &id), ("name", name), ("full", "0")],
            )
            .await;
        self.task_ok(r).await;
    }
}

pub async fn to_resp(r: reqwest::Response) -> Resp {
    let status = r.status();
    let reason = r
        .extensions()
        .get::<hyper::ext::ReasonPhrase>()
        .map(|p| String::from_utf8_lossy(p.as_bytes()).into_owned());
    let text = r.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp {
        status,
        reason,
        body,
    }
}
