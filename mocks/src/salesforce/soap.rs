//! SOAP login at `/services/Soap/u/{version}`: the default login of simple-salesforce and
//! jsforce. Success returns `serverUrl`, `sessionId`, `userId` and `userInfo/organizationId`;
//! failure is HTTP 500 with a SOAP fault carrying `sf:exceptionCode`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use quick_xml::escape::escape;
use quick_xml::events::Event;

use super::errors::ErrorCode;
use super::middleware::parse_version;
use super::SfState;

pub(crate) fn routes() -> Router<Arc<SfState>> {
    Router::new().route("/services/Soap/u/{version}", post(login))
}

fn xml(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml;charset=UTF-8"),
    );
    resp
}

/// A SOAP fault as Salesforce sends it (HTTP 500).
fn fault(code: &'static str, message: &str, fault_kind: &str) -> Response {
    let message = escape(message);
    let body = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:sf="urn:fault.partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault><faultcode>sf:{code}</faultcode><faultstring>{code}: {message}</faultstring><detail><sf:{fault_kind} xsi:type="sf:{fault_kind}"><sf:exceptionCode>{code}</sf:exceptionCode><sf:exceptionMessage>{message}</sf:exceptionMessage></sf:{fault_kind}></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"#
    );
    let mut resp = xml(StatusCode::INTERNAL_SERVER_ERROR, body);
    resp.extensions_mut().insert(ErrorCode(code));
    resp
}

/// Read `<username>` and `<password>` from a login envelope (any namespace prefix).
fn credentials(body: &[u8]) -> Result<(String, String), String> {
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut current: Option<&'static str> = None;
    let (mut user, mut pass) = (None, None);
    let mut saw_login = false;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                let local = e.local_name();
                current = match local.as_ref() {
                    b"username" => Some("username"),
                    b"password" => Some("password"),
                    b"login" => {
                        saw_login = true;
                        None
                    }
                    _ => None,
                };
            }
            Ok(Event::Text(t)) => {
                let text = t
                    .xml_content()
                    .map_err(|e| format!("bad text: {e}"))?
                    .into_owned();
                match current {
                    Some("username") => user.get_or_insert_with(String::new).push_str(&text),
                    Some("password") => pass.get_or_insert_with(String::new).push_str(&text),
                    _ => {}
                }
            }
            Ok(Event::GeneralRef(r)) => {
                // Entity references (&amp; etc.) arrive separately; append their text.
                let resolved = match r.as_ref() {
                    b"amp" => "&",
                    b"lt" => "<",
                    b"gt" => ">",
                    b"quot" => "\"",
                    b"apos" => "'",
                    _ => "",
                };
                let target = match current {
                    Some("username") => &mut user,
                    Some("password") => &mut pass,
                    _ => continue,
                };
                target.get_or_insert_with(String::new).push_str(resolved);
            }
            Ok(Event::End(_)) => current = None,
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => {
                return Err(format!(
                    "XML parse error at byte {}: {e}",
                    reader.buffer_position()
                ))
            }
        }
    }
    if !saw_login {
        return Err("Expected a login request in the SOAP body".into());
    }
    Ok((user.unwrap_or_default(), pass.unwrap_or_default()))
}

async fn login(
    State(st): State<Arc<SfState>>,
    Path(version): Path<String>,
    body: Bytes,
) -> Response {
    let Some(v) = parse_version(&format!("v{version}")) else {
        return fault(
            "UNSUPPORTED_API_VERSION",
            "Invalid Api version specified on URL",
            "UnexpectedErrorFault",
        );
    };
    if (v as u64) < st.retired_below.load(Ordering::Relaxed)
        || v as u64 > st.max_version.load(Ordering::Relaxed)
    {
        return fault(
            "UNSUPPORTED_API_VERSION",
            "Invalid Api version specified on URL",
            "UnexpectedErrorFault",
        );
    }
    let (username, password) = match credentials(&body) {
        Ok(c) => c,
        Err(msg) => {
            let body = format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><soapenv:Fault><faultcode>soapenv:Client</faultcode><faultstring>{}</faultstring></soapenv:Fault></soapenv:Body></soapenv:Envelope>"#,
                escape(&msg)
            );
            let mut resp = xml(StatusCode::INTERNAL_SERVER_ERROR, body);
            resp.extensions_mut().insert(ErrorCode("soapenv:Client"));
            return resp;
        }
    };
    let user = st.user(&username).filter(|u| {
        password == u.user.password
            || password == format!("{}{}", u.user.password, u.user.security_token)
    });
    let Some(user) = user else {
        return fault(
            "INVALID_LOGIN",
            "Invalid username, password, security token; or user locked out.",
            "LoginFault",
        );
    };
    let now = st.clock.elapsed();
    let epoch_ms = st.clock.wall().timestamp_millis();
    let (token, session) = st.auth.lock().issue(
        None,
        &user.user.username,
        &user.id,
        &["api".to_string()],
        now,
        epoch_ms,
        None,
    );
    let url = st.public_url();
    let org = &st.org_id;
    let secs = session.expires.saturating_sub(session.issued).as_secs();
    let full_name = format!("{} {}", user.user.first_name, user.user.last_name);
    let body = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><loginResponse><result><metadataServerUrl>{url}/services/Soap/m/{version}/{org}</metadataServerUrl><passwordExpired>false</passwordExpired><sandbox>false</sandbox><serverUrl>{url}/services/Soap/u/{version}/{org}</serverUrl><sessionId>{token}</sessionId><userId>{uid}</userId><userInfo><accessibilityMode>false</accessibilityMode><currencySymbol>$</currencySymbol><orgAttachmentFileSizeLimit>5242880</orgAttachmentFileSizeLimit><orgDefaultCurrencyIsoCode>USD</orgDefaultCurrencyIsoCode><orgDisallowHtmlAttachments>false</orgDisallowHtmlAttachments><orgHasPersonAccounts>false</orgHasPersonAccounts><organizationId>{org}</organizationId><organizationMultiCurrency>false</organizationMultiCurrency><organizationName>crashcart Mock Health</organizationName><profileId>00e000000000001AAA</profileId><roleId xsi:nil="true"/><sessionSecondsValid>{secs}</sessionSecondsValid><userDefaultCurrencyIsoCode xsi:nil="true"/><userEmail>{email}</userEmail><userFullName>{name}</userFullName><userId>{uid}</userId><userLanguage>en_US</userLanguage><userLocale>en_US</userLocale><userName>{email}</userName><userTimeZone>UTC</userTimeZone><userType>Standard</userType><userUiSkin>Theme3</userUiSkin></userInfo></result></loginResponse></soapenv:Body></soapenv:Envelope>"#,
        uid = user.id,
        email = escape(&user.user.username),
        name = escape(&full_name),
    );
    xml(StatusCode::OK, body)
}

#[cfg(test)]
mod tests {
    use super::credentials;

    #[test]
    fn reads_credentials_with_entities_and_prefixes() {
        let body = br#"<?xml version="1.0"?><env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/"><env:Body><n1:login xmlns:n1="urn:partner.soap.sforce.com"><n1:username>a@b.test</n1:username><n1:password>p&amp;wTOKEN</n1:password></n1:login></env:Body></env:Envelope>"#;
        let (u, p) = credentials(body).unwrap();
        assert_eq!(u, "a@b.test");
        assert_eq!(p, "p&wTOKEN");
        assert!(credentials(b"<x><y></x>").is_err());
        assert!(credentials(b"<Envelope/>").is_err());
    }
}
