//! Configuration of the mock org: API versions, quotas, token lifetimes, connected apps, users
//! and schema. Defaults describe a small healthcare org that works out of the box.

use std::time::Duration;

use super::schema::OrgSchema;

/// The demo RSA public key the default connected app trusts for the jwt-bearer grant.
pub const DEMO_JWT_PUBLIC_KEY: &str = include_str!("../../data/salesforce/jwt-demo-public-key.pem");
/// The matching private key. **Demo only**: it is public, so only mocks may trust it.
pub const DEMO_JWT_PRIVATE_KEY: &str =
    include_str!("../../data/salesforce/jwt-demo-private-key.pem");

/// A connected app (OAuth client).
#[derive(Clone, Debug)]
pub struct ConnectedApp {
    /// Display name.
    pub name: String,
    /// Consumer key (`client_id`).
    pub client_id: String,
    /// Consumer secret.
    pub client_secret: String,
    /// Scopes granted to tokens issued for this app.
    pub scopes: Vec<String>,
    /// RSA public key (PEM) that verifies jwt-bearer assertions; `None` disables the grant.
    pub jwt_public_key_pem: Option<String>,
    /// Username the client_credentials grant runs as; `None` disables the grant.
    pub run_as: Option<String>,
    /// Whether the password grant also returns a refresh token (Salesforce does not by default).
    pub password_grant_refresh_token: bool,
}

/// A user who can log in.
#[derive(Clone, Debug)]
pub struct OrgUser {
    /// Login name (an e-mail-like string).
    pub username: String,
    /// Password.
    pub password: String,
    /// Security token appended to the password by API clients (also accepted without it).
    pub security_token: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Title (e.g. `Physician`).
    pub title: String,
}

impl OrgUser {
    fn new(username: &str, first: &str, last: &str, title: &str) -> Self {
        Self {
            username: username.into(),
            password: "crashcart-Pa55".into(),
            security_token: "CRASHCARTTOKEN".into(),
            first_name: first.into(),
            last_name: last.into(),
            title: title.into(),
        }
    }
}

/// Everything that shapes the mock org.
#[derive(Clone, Debug)]
pub struct SalesforceConfig {
    /// Seed for ids, tokens and every other random choice.
    pub seed: u64,
    /// Oldest API version served (e.g. 31). Older versions answer 410 (retired).
    pub min_api_version: u32,
    /// Newest API version served (e.g. 62). Newer versions answer 404.
    pub max_api_version: u32,
    /// API version advertised to clients that ask which one to use.
    pub default_api_version: u32,
    /// Access-token lifetime.
    pub token_ttl: Duration,
    /// Daily API request quota (`DailyApiRequests.Max`).
    pub daily_api_limit: u64,
    /// API requests already used when the mock starts.
    pub initial_api_usage: u64,
    /// Records per query page (Salesforce's default is 2000).
    pub query_page_size: usize,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Largest CSV upload to a Bulk API 2.0 job, in bytes (Salesforce: 150 MB; the mock
    /// keeps uploads in memory, so 100 MB).
    pub max_bulk_upload_bytes: usize,
    /// Connected apps.
    pub apps: Vec<ConnectedApp>,
    /// Users; the first is the integration user that `--env` prints.
    pub users: Vec<OrgUser>,
    /// The org schema.
    pub schema: OrgSchema,
}

impl Default for SalesforceConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            min_api_version: 31,
            max_api_version: 62,
            default_api_version: 59,
            token_ttl: Duration::from_secs(2 * 3600),
            daily_api_limit: 15_000,
            initial_api_usage: 0,
            query_page_size: 2000,
            max_body_bytes: 8 * 1024 * 1024,
            max_bulk_upload_bytes: 100 * 1024 * 1024,
            apps: vec![ConnectedApp {
                name: "crashcart-integration".into(),
                client_id: "3MVG9crashcart.mock.consumer.key".into(),
                client_secret: "crashcart-consumer-secret".into(),
                scopes: vec![
                    "api".into(),
                    "refresh_token".into(),
                    "offline_access".into(),
                ],
                jwt_public_key_pem: Some(DEMO_JWT_PUBLIC_KEY.into()),
                run_as: Some("integration@crashcart.test".into()),
                password_grant_refresh_token: false,
            }],
            users: vec![
                OrgUser::new(
                    "integration@crashcart.test",
                    "Integration",
                    "User",
                    "Integration",
                ),
                OrgUser::new("dr.adams@crashcart.test", "Ada", "Adams", "Physician"),
                OrgUser::new("dr.okafor@crashcart.test", "Chidi", "Okafor", "Physician"),
                OrgUser::new(
                    "nurse.lind@crashcart.test",
                    "Maja",
                    "Lind",
                    "Nurse Practitioner",
                ),
            ],
            schema: OrgSchema::default_schema().expect("the built-in schema is valid"),
        }
    }
}

impl SalesforceConfig {
    /// The API version string (`"59.0"`) for a major number.
    pub fn version_string(v: u32) -> String {
        format!("{v}.0")
    }

    /// The release label of a version, e.g. 62 → `Winter '25`.
    pub fn release_label(v: u32) -> String {
        // v62 = Winter '25, v63 = Spring '25, v64 = Summer '25, v65 = Winter '26, ...
        let steps = v as i64 - 62;
        let idx = steps.rem_euclid(3); // 0 winter, 1 spring, 2 summer
        let year = 25 + (steps - idx) / 3;
        let season = ["Winter", "Spring", "Summer"][idx as usize];
        format!("{season} '{:02}", year.rem_euclid(100))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_labels_follow_salesforce_naming() {
        assert_eq!(SalesforceConfig::release_label(62), "Winter '25");
        assert_eq!(SalesforceConfig::release_label(61), "Summer '24");
        assert_eq!(SalesforceConfig::release_label(60), "Spring '24");
        assert_eq!(SalesforceConfig::release_label(59), "Winter '24");
        assert_eq!(SalesforceConfig::release_label(63), "Spring '25");
    }
}
