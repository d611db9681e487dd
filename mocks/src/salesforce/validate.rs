//! Write validation: a JSON body checked against an object's schema, turned into normalised
//! field values, or the Salesforce error that the real org would answer.

use chrono::{DateTime, NaiveDate, Utc};
use http::StatusCode;
use serde_json::{Map, Value};

use super::errors::SfError;
use super::ids;
use super::schema::{FieldDef, FieldType, ObjectDef};

/// Whether a body creates a record or updates one (required fields differ).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMode {
    /// Insert: required fields must be present.
    Create,
    /// Update: only fields present are touched; required fields must not be nulled.
    Update,
}

/// Format an instant as Salesforce does: `2024-05-01T09:30:00.000+0000`.
pub fn format_datetime(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

/// Parse a datetime as Salesforce accepts it (ISO 8601 with `Z` or an offset, optional millis).
pub fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z"] {
        if let Ok(t) = DateTime::parse_from_str(s, fmt) {
            return Some(t.with_timezone(&Utc));
        }
    }
    None
}

/// Parse a date (`YYYY-MM-DD`).
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "VALUE_NULL",
        Value::Bool(true) => "VALUE_TRUE",
        Value::Bool(false) => "VALUE_FALSE",
        Value::Number(n) if n.is_f64() => "VALUE_NUMBER_FLOAT",
        Value::Number(_) => "VALUE_NUMBER_INT",
        Value::String(_) => "VALUE_STRING",
        Value::Array(_) => "START_ARRAY",
        Value::Object(_) => "START_OBJECT",
    }
}

fn deserialize_error(target: &str, v: &Value) -> SfError {
    let shown = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    SfError::json_parser(format!(
        "Cannot deserialize instance of {target} from {} value {shown} or request may be missing a required field",
        json_kind(v)
    ))
}

fn too_long(f: &FieldDef, v: &str) -> SfError {
    let shown: String = v.chars().take(40).collect();
    SfError::new(
        StatusCode::BAD_REQUEST,
        "STRING_TOO_LONG",
        format!(
            "{}: data value too large: {shown} (max length={})",
            f.label, f.length
        ),
    )
    .with_fields(vec![f.name.clone()])
}

/// Normalise one value for a field, or explain why Salesforce would reject it.
pub fn coerce(f: &FieldDef, v: &Value) -> Result<Value, SfError> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    match f.ftype {
        FieldType::String
        | FieldType::Textarea
        | FieldType::Phone
        | FieldType::Url
        | FieldType::Email
        | FieldType::Picklist
        | FieldType::Multipicklist => {
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                other => return Err(deserialize_error("string", other)),
            };
            if f.length > 0 && s.chars().count() > f.length as usize {
                return Err(too_long(f, &s));
            }
            if f.ftype == FieldType::Email && !s.is_empty() && !looks_like_email(&s) {
                return Err(SfError::new(
                    StatusCode::BAD_REQUEST,
                    "INVALID_EMAIL_ADDRESS",
                    format!("{}: invalid email address: {s}", f.label),
                )
                .with_fields(vec![f.name.clone()]));
            }
            if f.restricted && !s.is_empty() {
                let parts: Vec<&str> = if f.ftype == FieldType::Multipicklist {
                    s.split(';').collect()
                } else {
                    vec![s.as_str()]
                };
                if let Some(bad) = parts.iter().find(|p| !f.picklist.iter().any(|x| x == *p)) {
                    return Err(SfError::new(
                        StatusCode::BAD_REQUEST,
                        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                        format!(
                            "{}: bad value for restricted picklist field: {bad}",
                            f.label
                        ),
                    )
                    .with_fields(vec![f.name.clone()]));
                }
            }
            Ok(if s.is_empty() {
                Value::Null
            } else {
                Value::String(s)
            })
        }
        FieldType::Boolean => match v {
            Value::Bool(b) => Ok(Value::Bool(*b)),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
            other => Err(deserialize_error("boolean", other)),
        },
        FieldType::Int => match v {
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(v.clone()),
            Value::Number(n) => Ok(Value::from(n.as_f64().unwrap_or(0.0).round() as i64)),
            Value::String(s) => s
                .trim()
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| deserialize_error("int", v)),
            other => Err(deserialize_error("int", other)),
        },
        FieldType::Double | FieldType::Currency | FieldType::Percent => match v {
            Value::Number(n) => Ok(Value::from(n.as_f64().unwrap_or(0.0))),
            Value::String(s) => s
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .map(Value::from)
                .ok_or_else(|| deserialize_error("double", v)),
            other => Err(deserialize_error("double", other)),
        },
        FieldType::Date => match v {
            Value::String(s) => {
                let date = parse_date(s)
                    .or_else(|| parse_datetime(s).map(|t| t.date_naive()))
                    .ok_or_else(|| deserialize_error("date", v))?;
                Ok(Value::String(date.format("%Y-%m-%d").to_string()))
            }
            other => Err(deserialize_error("date", other)),
        },
        FieldType::Datetime => match v {
            Value::String(s) => {
                let t = parse_datetime(s)
                    .or_else(|| {
                        parse_date(s)
                            .and_then(|d| d.and_hms_opt(0, 0, 0))
                            .map(|n| n.and_utc())
                    })
                    .ok_or_else(|| deserialize_error("datetime", v))?;
                Ok(Value::String(format_datetime(t)))
            }
            other => Err(deserialize_error("datetime", other)),
        },
        FieldType::Reference | FieldType::Id => match v {
            Value::String(s) if s.is_empty() => Ok(Value::Null),
            Value::String(s) => ids::normalize(s).map(Value::String).ok_or_else(|| {
                SfError::new(
                    StatusCode::BAD_REQUEST,
                    "MALFORMED_ID",
                    format!("{}: id value of incorrect type: {s}", f.label),
                )
                .with_fields(vec![f.name.clone()])
            }),
            other => Err(deserialize_error("string", other)),
        },
        FieldType::Autonumber => Err(read_only(std::slice::from_ref(&f.name))),
    }
}

fn looks_like_email(s: &str) -> bool {
    let mut parts = s.splitn(2, '@');
    let (Some(local), Some(domain)) = (parts.next(), parts.next()) else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.contains(char::is_whitespace)
}

/// INVALID_FIELD_FOR_INSERT_UPDATE for fields a client may not write.
pub fn read_only(fields: &[String]) -> SfError {
    SfError::new(
        StatusCode::BAD_REQUEST,
        "INVALID_FIELD_FOR_INSERT_UPDATE",
        format!(
            "Unable to create/update fields: {}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
            fields.join(", ")
        ),
    )
    .with_fields(fields.to_vec())
}

/// REQUIRED_FIELD_MISSING naming every missing field.
pub fn required_missing(fields: &[String]) -> SfError {
    SfError::new(
        StatusCode::BAD_REQUEST,
        "REQUIRED_FIELD_MISSING",
        format!("Required fields are missing: [{}]", fields.join(", ")),
    )
    .with_fields(fields.to_vec())
}

/// Check a write body against the object. Returns canonical field names with normalised values.
///
/// Unknown fields, read-only fields, bad values and missing required fields are reported with
/// Salesforce's codes. Uniqueness and references are checked by the store, which sees the data.
pub fn validate_body(
    obj: &ObjectDef,
    body: &Map<String, Value>,
    mode: WriteMode,
) -> Result<Map<String, Value>, SfError> {
    let mut out = Map::new();
    let mut not_writable = vec![];
    for (key, value) in body {
        if key == "attributes" {
            continue;
        }
        let Some(f) = obj.field(key) else {
            return Err(SfError::unknown_field(&obj.name, key));
        };
        if f.name == "Id" && mode == WriteMode::Update {
            continue;
        }
        if !f.writable() {
            not_writable.push(f.name.clone());
            continue;
        }
        out.insert(f.name.clone(), coerce(f, value)?);
    }
    if !not_writable.is_empty() {
        return Err(read_only(&not_writable));
    }
    let missing: Vec<String> = obj
        .fields
        .iter()
        .filter(|f| f.required && f.writable())
        .filter(|f| match mode {
            WriteMode::Create => out.get(&f.name).is_none_or(Value::is_null) && f.default.is_none(),
            WriteMode::Update => out.get(&f.name).is_some_and(Value::is_null),
        })
        .map(|f| f.name.clone())
        .collect();
    if !missing.is_empty() {
        return Err(required_missing(&missing));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::salesforce::schema::OrgSchema;
    use serde_json::json;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn validation_uses_salesforce_codes() {
        let schema = OrgSchema::default_schema().unwrap();
        let contact = schema.object("Contact").unwrap();
        let ok = validate_body(
            contact,
            &body(json!({"lastname": "Doe", "Birthdate": "1980-02-03"})),
            WriteMode::Create,
        )
        .unwrap();
        assert_eq!(ok["LastName"], "Doe");
        let cases = [
            (json!({"FirstName": "A"}), "REQUIRED_FIELD_MISSING"),
            (json!({"LastName": "Doe", "Nope__c": 1}), "INVALID_FIELD"),
            (
                json!({"LastName": "Doe", "Preferred_Language__c": "Klingon"}),
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            ),
            (
                json!({"LastName": "Doe", "Birthdate": "yesterday"}),
                "JSON_PARSER_ERROR",
            ),
            (
                json!({"LastName": "Doe", "Email": "not-an-email"}),
                "INVALID_EMAIL_ADDRESS",
            ),
            (
                json!({"LastName": "Doe", "Name": "X"}),
                "INVALID_FIELD_FOR_INSERT_UPDATE",
            ),
            (
                json!({"LastName": "Doe", "AccountId": "zz"}),
                "MALFORMED_ID",
            ),
            (json!({"LastName": "x".repeat(81)}), "STRING_TOO_LONG"),
        ];
        for (b, code) in cases {
            let err = validate_body(contact, &body(b.clone()), WriteMode::Create).unwrap_err();
            assert_eq!(err.code, code, "{b}");
        }
        let err = validate_body(contact, &body(json!({"LastName": null})), WriteMode::Update)
            .unwrap_err();
        assert_eq!(err.code, "REQUIRED_FIELD_MISSING");
        assert!(
            validate_body(contact, &body(json!({"FirstName": "B"})), WriteMode::Update).is_ok()
        );
    }

    #[test]
    fn datetimes_are_normalised() {
        let t = parse_datetime("2024-05-01T09:30:00Z").unwrap();
        assert_eq!(format_datetime(t), "2024-05-01T09:30:00.000+0000");
        assert!(parse_datetime("2024-05-01T09:30:00.000+0000").is_some());
        assert!(parse_datetime("2024-05-01T11:30:00+02:00").is_some());
    }
}
