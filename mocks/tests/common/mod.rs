//! Shared helpers for the mock integration tests: start a mock on port 0, log in, send requests.
#![allow(dead_code)]

use crashcart_mocks::salesforce::MockSalesforceBuilder;
use crashcart_mocks::MockSalesforce;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// The `errorCode` of a Salesforce error array (asserting the array shape).
    pub fn error_code(&self) -> &str {
        let arr = self
            .json
            .as_array()
            .unwrap_or_else(|| panic!("not an error array: {}", self.text));
        assert_eq!(arr.len(), 1, "{}", self.text);
        assert!(arr[0]["message"].is_string(), "{}", self.text);
        arr[0]["errorCode"].as_str().unwrap()
    }
    pub fn message(&self) -> &str {
        self.json[0]["message"].as_str().unwrap_or("")
    }
}

pub async fn read(r: reqwest::Response) -> Resp {
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    let json = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::Null)
    };
    Resp {
        status,
        headers,
        text,
        json,
    }
}

/// A started mock with a logged-in client.
pub struct Org {
    pub sf: MockSalesforce,
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

pub const CLIENT_ID: &str = "3MVG9crashcart.mock.consumer.key";
pub const CLIENT_SECRET: &str = "crashcart-consumer-secret";
pub const USERNAME: &str = "integration@crashcart.test";
pub const PASSWORD: &str = "crashcart-Pa55";

impl Org {
    pub async fn start() -> Self {
        Self::with(MockSalesforce::builder()).await
    }

    pub async fn with(builder: MockSalesforceBuilder) -> Self {
        let sf = builder.start().await.expect("mock starts");
        let base = sf.url();
        let http = reqwest::Client::new();
        let mut org = Self {
            sf,
            http,
            base,
            token: String::new(),
        };
        org.token = org.password_login().await;
        org
    }

    pub async fn password_login(&self) -> String {
        let r = self
            .form(
                "/services/oauth2/token",
                &[
                    ("grant_type", "password"),
                    ("client_id", CLIENT_ID),
                    ("client_secret", CLIENT_SECRET),
                    ("username", USERNAME),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.json["access_token"].as_str().unwrap().to_string()
    }

    pub async fn form(&self, path: &str, params: &[(&str, &str)]) -> Resp {
        read(
            self.http
                .post(format!("{}{path}", self.base))
                .form(params)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// A data-API path under v59.0.
    pub fn data(&self, path: &str) -> String {
        format!("{}/services/data/v59.0{path}", self.base)
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        self.call_with(method, path, body, &[]).await
    }

    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            self.data(path)
        };
        let mut rb = self.http.request(method, url).bearer_auth(&self.token);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        read(rb.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Resp {
        self.call(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.call(Method::DELETE, path, None).await
    }

    pub async fn query(&self, soql: &str) -> Resp {
        let url = reqwest::Url::parse_with_params(&self.data("/query"), &[("q", soql)]).unwrap();
        self.call(Method::GET, url.as_str(), None).await
    }

    /// Create a Contact and return its id.
    pub async fn contact(&self, last: &str, ext: &str) -> String {
        let r = self
            .post(
                "/sobjects/Contact",
                serde_json::json!({"LastName": last, "Patient_External_Id__c": ext}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.json["id"].as_str().unwrap().to_string()
    }
}

pub mod llm;
