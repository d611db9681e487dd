//! OAuth 2.0, SOAP login and session handling of the mock Salesforce, pinned to the wire.

mod common;

use common::*;
use crashcart_mocks::salesforce::config::DEMO_JWT_PRIVATE_KEY;
use crashcart_mocks::salesforce::SessionFilter;
use crashcart_mocks::MockSalesforce;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn password_grant_success_has_salesforce_shape() {
    let org = Org::start().await;
    let r = org
        .form(
            "/services/oauth2/token",
            &[
                ("grant_type", "password"),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
                ("username", USERNAME),
                ("password", "crashcart-Pa55CRASHCARTTOKEN"),
            ],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/json;charset=UTF-8")
    );
    let b = &r.json;
    let token = b["access_token"].as_str().unwrap();
    assert!(token.starts_with("00D") && token.contains('!'), "{token}");
    assert_eq!(b["instance_url"], org.base.as_str());
    assert_eq!(b["token_type"], "Bearer");
    assert!(b["issued_at"].as_str().unwrap().parse::<u64>().is_ok());
    assert!(b["signature"].is_string());
    assert!(
        b.get("refresh_token").is_none(),
        "the password grant issues no refresh token"
    );
    // jsforce parses the identity URL's last two segments: org id, then user id.
    let id = b["id"].as_str().unwrap();
    let segs: Vec<&str> = id.rsplit('/').take(2).collect();
    assert!(
        segs[0].starts_with("005") && segs[1].starts_with("00D"),
        "{id}"
    );
    assert_eq!(segs[1], org.sf.handle().org_id());
}

#[tokio::test]
async fn token_errors_match_salesforce() {
    let org = Org::start().await;
    // (form fields, expected error, expected description)
    type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![
                ("grant_type", "password"),
                ("client_id", "nope"),
                ("client_secret", "x"),
                ("username", USERNAME),
                ("password", PASSWORD),
            ],
            "invalid_client_id",
            "client identifier invalid",
        ),
        (
            vec![
                ("grant_type", "password"),
                ("client_id", CLIENT_ID),
                ("client_secret", "wrong"),
                ("username", USERNAME),
                ("password", PASSWORD),
            ],
            "invalid_client",
            "invalid client credentials",
        ),
        (
            vec![
                ("grant_type", "password"),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
                ("username", USERNAME),
                ("password", "bad"),
            ],
            "invalid_grant",
            "authentication failure",
        ),
        (
            vec![
                ("grant_type", "password"),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
                ("username", "ghost@x.test"),
                ("password", PASSWORD),
            ],
            "invalid_grant",
            "authentication failure",
        ),
        (
            vec![("grant_type", "magic")],
            "unsupported_grant_type",
            "grant type not supported",
        ),
        (vec![], "unsupported_grant_type", "grant type not supported"),
        (
            vec![
                ("grant_type", "refresh_token"),
                ("client_id", CLIENT_ID),
                ("refresh_token", "5Aep861bogus"),
            ],
            "invalid_grant",
            "expired access/refresh token",
        ),
    ];
    for (params, error, description) in cases {
        let r = org.form("/services/oauth2/token", &params).await;
        assert_eq!(r.status, 400, "{params:?}");
        assert_eq!(
            r.json,
            json!({"error": error, "error_description": description}),
            "{params:?}"
        );
    }
}

#[tokio::test]
async fn refresh_tokens_refresh_and_revoke() {
    let org = Org::start().await;
    let rt = org
        .sf
        .handle()
        .mint_refresh_token(CLIENT_ID, USERNAME)
        .unwrap();
    let r = org
        .form(
            "/services/oauth2/token",
            &[
                ("grant_type", "refresh_token"),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
                ("refresh_token", &rt),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let access = r.json["access_token"].as_str().unwrap().to_string();
    assert!(r.json.get("refresh_token").is_none());

    // Revoking the refresh token ends sessions issued from it, and the token itself.
    let rv = org.form("/services/oauth2/revoke", &[("token", &rt)]).await;
    assert_eq!(rv.status, 200);
    let again = org
        .form(
            "/services/oauth2/token",
            &[
                ("grant_type", "refresh_token"),
                ("client_id", CLIENT_ID),
                ("refresh_token", &rt),
            ],
        )
        .await;
    assert_eq!(again.json["error"], "invalid_grant");
    let mut o = org;
    o.token = access;
    let denied = o.get("/limits").await;
    assert_eq!(denied.status, 401);
    assert_eq!(denied.error_code(), "INVALID_SESSION_ID");

    let unknown = o
        .form("/services/oauth2/revoke", &[("token", "nope")])
        .await;
    assert_eq!(unknown.status, 400);
    assert_eq!(unknown.json["error"], "invalid_token");
}

#[tokio::test]
async fn client_credentials_via_basic_auth_carries_api_instance_url() {
    let org = Org::start().await;
    let r = common::read(
        org.http
            .post(format!("{}/services/oauth2/token", org.base))
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["api_instance_url"], org.base.as_str());
    assert!(r.json.get("refresh_token").is_none());
}

fn jwt(claims: serde_json::Value, key_pem: &str) -> String {
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(key_pem.as_bytes()).unwrap();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &key,
    )
    .unwrap()
}

#[tokio::test]
async fn jwt_bearer_verifies_signature_and_claims() {
    let org = Org::start().await;
    let exp = chrono::Utc::now().timestamp() + 180;
    let grant = "urn:ietf:params:oauth:grant-type:jwt-bearer";
    let good = jwt(
        json!({"iss": CLIENT_ID, "sub": USERNAME, "aud": "https://login.salesforce.com", "exp": exp}),
        DEMO_JWT_PRIVATE_KEY,
    );
    let r = org
        .form(
            "/services/oauth2/token",
            &[("grant_type", grant), ("assertion", &good)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json.get("refresh_token").is_none());

    // A signature from another key: flip the signature's bytes.
    let (head, sig) = good.rsplit_once('.').unwrap();
    let mut forged_sig: Vec<char> = sig.chars().collect();
    forged_sig.reverse();
    let forged = format!("{head}.{}", forged_sig.into_iter().collect::<String>());
    let cases = [
        (forged, "invalid_grant", "invalid assertion"),
        (
            jwt(
                json!({"iss": CLIENT_ID, "sub": USERNAME, "aud": "https://login.salesforce.com", "exp": exp - 3600}),
                DEMO_JWT_PRIVATE_KEY,
            ),
            "invalid_grant",
            "invalid assertion",
        ),
        (
            jwt(
                json!({"iss": CLIENT_ID, "sub": USERNAME, "aud": "https://evil.example", "exp": exp}),
                DEMO_JWT_PRIVATE_KEY,
            ),
            "invalid_grant",
            "audience is invalid",
        ),
        (
            jwt(
                json!({"iss": "unknown-app", "sub": USERNAME, "aud": "https://login.salesforce.com", "exp": exp}),
                DEMO_JWT_PRIVATE_KEY,
            ),
            "invalid_client_id",
            "client identifier invalid",
        ),
        (
            jwt(
                json!({"iss": CLIENT_ID, "sub": "ghost@x.test", "aud": "https://login.salesforce.com", "exp": exp}),
                DEMO_JWT_PRIVATE_KEY,
            ),
            "invalid_grant",
            "user hasn't approved this consumer",
        ),
        (
            "not.a.jwt".to_string(),
            "invalid_grant",
            "invalid assertion",
        ),
    ];
    for (assertion, error, description) in cases {
        let r = org
            .form(
                "/services/oauth2/token",
                &[("grant_type", grant), ("assertion", &assertion)],
            )
            .await;
        assert_eq!(r.status, 400);
        assert_eq!(
            r.json,
            json!({"error": error, "error_description": description}),
            "{assertion}"
        );
    }
}

#[tokio::test]
async fn introspect_reports_live_and_dead_tokens() {
    let org = Org::start().await;
    let r = org
        .form(
            "/services/oauth2/introspect",
            &[
                ("token", &org.token),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
            ],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["active"], true);
    assert_eq!(r.json["client_id"], CLIENT_ID);
    assert_eq!(r.json["username"], USERNAME);
    assert_eq!(r.json["token_type"], "access_token");
    assert!(r.json["exp"].as_i64().unwrap() > r.json["iat"].as_i64().unwrap());
    org.sf.handle().expire_sessions(&SessionFilter::default());
    let dead = org
        .form(
            "/services/oauth2/introspect",
            &[
                ("token", &org.token),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
            ],
        )
        .await;
    assert_eq!(dead.json, json!({"active": false}));
    let bad_client = org
        .form(
            "/services/oauth2/introspect",
            &[
                ("token", &org.token),
                ("client_id", CLIENT_ID),
                ("client_secret", "x"),
            ],
        )
        .await;
    assert_eq!(bad_client.status, 400);
    assert_eq!(bad_client.json["error"], "invalid_client");
}

#[tokio::test]
async fn expired_revoked_and_missing_sessions_get_invalid_session_id() {
    let org = Org::with(MockSalesforce::builder().token_ttl(Duration::from_secs(3600))).await;
    assert_eq!(org.get("/limits").await.status, 200);
    assert_eq!(
        org.sf.handle().expire_sessions(&SessionFilter {
            username: Some(USERNAME.into()),
            ..Default::default()
        }),
        1
    );
    let r = org.get("/limits").await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json,
        json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
    );
    assert!(r.header("sforce-limit-info").is_none());
    let anon = common::read(org.http.get(org.data("/limits")).send().await.unwrap()).await;
    assert_eq!(anon.status, 401);
    assert_eq!(anon.error_code(), "INVALID_SESSION_ID");
    // The history records the failures with the caller's identity but never the token.
    let hist = org.sf.handle().history().snapshot();
    let last = hist
        .iter()
        .rev()
        .find(|h| h.status == 401 && h.user.is_some())
        .unwrap();
    assert_eq!(last.error_code.as_deref(), Some("INVALID_SESSION_ID"));
    assert_eq!(last.client_id.as_deref(), Some(CLIENT_ID));
    let serialized = serde_json::to_string(&hist).unwrap();
    assert!(
        !serialized.contains(&org.token),
        "a token leaked into the history"
    );
    assert!(
        !serialized.contains(CLIENT_SECRET) && !serialized.contains(PASSWORD),
        "a secret leaked into the history"
    );
}

#[tokio::test(start_paused = true)]
async fn tokens_expire_after_their_ttl_on_the_tokio_clock() {
    let (app, handle) = MockSalesforce::builder()
        .token_ttl(Duration::from_secs(60))
        .build_in_process("http://mock.test")
        .unwrap();
    use tower::ServiceExt;
    let call = |req: http::Request<axum::body::Body>| app.clone().oneshot(req);
    let login = call(
        http::Request::post("/services/oauth2/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("grant_type=password&client_id={CLIENT_ID}&client_secret={CLIENT_SECRET}&username={USERNAME}&password={PASSWORD}").into())
            .unwrap(),
    )
    .await
    .unwrap();
    let body = http_body_util::BodyExt::collect(login.into_body())
        .await
        .unwrap()
        .to_bytes();
    let token = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let limits = || {
        http::Request::get("/services/data/v59.0/limits")
            .header("authorization", format!("Bearer {token}"))
            .body(axum::body::Body::empty())
            .unwrap()
    };
    assert_eq!(call(limits()).await.unwrap().status(), 200);
    tokio::time::advance(Duration::from_secs(59)).await;
    assert_eq!(call(limits()).await.unwrap().status(), 200);
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(call(limits()).await.unwrap().status(), 401);
    assert_eq!(handle.live_sessions(), 0);
}

fn soap_body(user: &str, pass: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8" ?><env:Envelope xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:env="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:partner.soap.sforce.com"><env:Body><n1:login xmlns:n1="urn:partner.soap.sforce.com"><n1:username>{user}</n1:username><n1:password>{pass}</n1:password></n1:login></env:Body></env:Envelope>"#
    )
}

#[tokio::test]
async fn soap_login_success_and_invalid_login_fault() {
    let org = Org::start().await;
    let post = |body: String, version: &str| {
        org.http
            .post(format!("{}/services/Soap/u/{version}", org.base))
            .header("content-type", "text/xml")
            .header("SOAPAction", "login")
            .body(body)
            .send()
    };
    let ok = common::read(
        post(soap_body(USERNAME, "crashcart-Pa55CRASHCARTTOKEN"), "59.0")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.header("content-type"), Some("text/xml;charset=UTF-8"));
    for tag in ["<serverUrl>", "<sessionId>", "<userId>", "<organizationId>"] {
        assert!(ok.text.contains(tag), "missing {tag}: {}", ok.text);
    }
    assert!(ok
        .text
        .contains(&format!("<serverUrl>{}/services/Soap/u/59.0/", org.base)));
    let session = ok
        .text
        .split("<sessionId>")
        .nth(1)
        .unwrap()
        .split("</sessionId>")
        .next()
        .unwrap()
        .to_string();
    let mut o = org;
    o.token = session;
    assert_eq!(
        o.get("/limits").await.status,
        200,
        "a SOAP session works on REST"
    );

    let bad = common::read(
        o.http
            .post(format!("{}/services/Soap/u/59.0", o.base))
            .header("content-type", "text/xml")
            .body(soap_body(USERNAME, "wrong"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(bad.status, 500);
    assert!(
        bad.text.contains("<faultcode>sf:INVALID_LOGIN</faultcode>"),
        "{}",
        bad.text
    );
    assert!(bad
        .text
        .contains("<sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode>"));
    let retired = common::read(
        o.http
            .post(format!("{}/services/Soap/u/20.0", o.base))
            .header("content-type", "text/xml")
            .body(soap_body(USERNAME, PASSWORD))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(retired.status, 500);
    assert!(retired.text.contains("UNSUPPORTED_API_VERSION"));
}
