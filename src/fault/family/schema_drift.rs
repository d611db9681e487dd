//! Salesforce schema drift, as state of the mock org: a field renamed (its values move
//! along), removed, retyped or newly required; a picklist value withdrawn; API versions
//! retired. Describe and queries follow; each is undone when the fault ends.

use crashcart_mocks::salesforce::schema::{FieldDef, FieldType, ObjectDef};

use super::{Draw, Drawn, Family, Need, StateCtx, Undo};
use crate::fault::engine::FaultError;
use crate::fault::model::{DependencyName, FaultKind, FaultSpec, Trigger};

/// The schema drift family.
pub struct SchemaDrift;

/// A field renamed by a drift fault: (from, to).
type Renamed = Option<(String, String)>;

fn field_of(obj: &ObjectDef, field: &str) -> Result<FieldDef, String> {
    obj.field(field)
        .cloned()
        .ok_or_else(|| format!("{}.{field} does not exist", obj.name))
}

fn parse_type(s: &str) -> Option<FieldType> {
    serde_json::from_value(serde_json::json!(s)).ok()
}

/// Change one sObject's definition; the undo puts the old one back (and the values of a
/// renamed field under their old name).
fn drift(
    ctx: &StateCtx<'_>,
    object: &str,
    change: &dyn Fn(&mut ObjectDef) -> Result<Renamed, String>,
) -> Result<Option<Undo>, FaultError> {
    ctx.salesforce()?.with_org_mut(|org| {
        let obj = org
            .schema
            .object_mut(object)
            .ok_or_else(|| ctx.invalid(format!("no sObject named {object}")))?;
        let before = obj.clone();
        let renamed = change(obj).map_err(|m| ctx.invalid(m))?;
        if let Some((from, to)) = &renamed {
            org.data.rename_field(&before.name, from, to);
        }
        let slot = format!("object:{}", before.name);
        Ok(Some(Undo::new(Some(&slot), move |deps| {
            if let Some(sf) = &deps.salesforce {
                sf.with_org_mut(|org| {
                    if let Some((from, to)) = renamed {
                        org.data.rename_field(&before.name, &to, &from);
                    }
                    if let Some(obj) = org.schema.object_mut(&before.name) {
                        *obj = before;
                    }
                });
            }
        })))
    })
}

fn rename(obj: &mut ObjectDef, field: &str, to: &str) -> Result<Renamed, String> {
    let mut f = field_of(obj, field)?;
    let from = f.name.clone();
    obj.remove_field(&from);
    f.name = to.to_string();
    f.label = to.to_string();
    obj.upsert_field(f);
    Ok(Some((from, to.to_string())))
}

/// A new required text field, shaped like the object's name field.
fn require(obj: &mut ObjectDef, field: &str) -> Result<Renamed, String> {
    let mut f = field_of(obj, "LastName")
        .or_else(|_| field_of(obj, "Name"))
        .or_else(|_| field_of(obj, "Subject"))?;
    f.name = field.to_string();
    f.label = field.to_string();
    f.ftype = FieldType::String;
    f.required = true;
    f.unique = false;
    f.external_id = false;
    f.default = None;
    f.compound = vec![];
    f.system = false;
    obj.upsert_field(f);
    Ok(None)
}

fn withdraw(obj: &mut ObjectDef, field: &str, value: &str) -> Result<Renamed, String> {
    let mut f = field_of(obj, field)?;
    if !f.picklist.iter().any(|v| v == value) {
        return Err(format!(
            "{}.{field} has no picklist value {value:?}",
            obj.name
        ));
    }
    f.picklist.retain(|v| v != value);
    f.restricted = true;
    obj.upsert_field(f);
    Ok(None)
}

impl Family for SchemaDrift {
    fn validate(&self, kind: &FaultKind) -> Result<(), String> {
        match kind {
            FaultKind::ApiVersionRetired { below } => {
                super::count_within("below", u64::from(*below), 1, 1_000)
            }
            _ => Ok(()),
        }
    }

    fn needs(&self, _kind: &FaultKind) -> Need {
        Need::Salesforce
    }

    fn apply_state(
        &self,
        ctx: &StateCtx<'_>,
        spec: &FaultSpec,
    ) -> Result<Option<Undo>, FaultError> {
        match &spec.fault {
            FaultKind::FieldRenamed { object, field, to } => {
                drift(ctx, object, &|obj| rename(obj, field, to))
            }
            FaultKind::FieldRemoved { object, field } => drift(ctx, object, &|obj| {
                let f = field_of(obj, field)?;
                obj.remove_field(&f.name);
                Ok(None)
            }),
            FaultKind::FieldTypeChanged { object, field, to } => drift(ctx, object, &|obj| {
                let mut f = field_of(obj, field)?;
                f.ftype = parse_type(to).ok_or_else(|| format!("unknown field type {to:?}"))?;
                obj.upsert_field(f);
                Ok(None)
            }),
            FaultKind::RequiredFieldAdded { object, field } => {
                drift(ctx, object, &|obj| require(obj, field))
            }
            FaultKind::PicklistValueWithdrawn {
                object,
                field,
                value,
            } => drift(ctx, object, &|obj| withdraw(obj, field, value)),
            FaultKind::ApiVersionRetired { below } => {
                let sf = ctx.salesforce()?;
                let before = sf.retired_below();
                sf.retire_versions_below(*below);
                Ok(Some(Undo::new(Some("api-versions"), move |deps| {
                    if let Some(sf) = &deps.salesforce {
                        sf.retire_versions_below(before);
                    }
                })))
            }
            _ => Ok(None),
        }
    }

    fn explore(&self, name: &str, _draw: &Draw) -> Option<Drawn> {
        // Every drift aims at a Contact field the booking workload writes.
        let contact = |f: &str| (String::from("Contact"), f.to_string());
        let kind = match name {
            "field_renamed" => {
                let (object, field) = contact("Data_Provenance__c");
                FaultKind::FieldRenamed {
                    object,
                    field,
                    to: "Provenance_Source__c".into(),
                }
            }
            "field_removed" => {
                let (object, field) = contact("Preferred_Language__c");
                FaultKind::FieldRemoved { object, field }
            }
            "field_type_changed" => {
                let (object, field) = contact("Data_Provenance__c");
                FaultKind::FieldTypeChanged {
                    object,
                    field,
                    to: "double".into(),
                }
            }
            "required_field_added" => {
                let (object, field) = contact("MailingCity");
                FaultKind::RequiredFieldAdded { object, field }
            }
            "picklist_value_withdrawn" => {
                let (object, field) = contact("Preferred_Language__c");
                FaultKind::PicklistValueWithdrawn {
                    object,
                    field,
                    value: "Spanish".into(),
                }
            }
            "api_version_retired" => FaultKind::ApiVersionRetired { below: 60 },
            _ => return None,
        };
        Some((kind, Draw::on(DependencyName::Salesforce), Trigger::Always))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::model::kind_names;
    use crashcart_mocks::salesforce::schema::OrgSchema;

    fn contact() -> ObjectDef {
        OrgSchema::default_schema()
            .expect("the built-in schema loads")
            .object("Contact")
            .cloned()
            .expect("Contact")
    }

    #[test]
    fn renames_requirements_and_withdrawals_change_the_definition() {
        let mut c = contact();
        assert_eq!(
            rename(&mut c, "Data_Provenance__c", "Source__c").unwrap(),
            Some(("Data_Provenance__c".into(), "Source__c".into()))
        );
        assert!(c.field("Data_Provenance__c").is_none() && c.field("Source__c").is_some());
        require(&mut c, "Ward__c").unwrap();
        assert!(c.field("Ward__c").is_some_and(|f| f.required));
        assert!(withdraw(&mut c, "Preferred_Language__c", "Klingon")
            .unwrap_err()
            .contains("no picklist value"));
        assert!(rename(&mut c, "Nope__c", "X")
            .unwrap_err()
            .contains("does not exist"));
    }

    #[test]
    fn drift_needs_the_mock_salesforce_and_every_kind_explores() {
        let deps = Default::default();
        let ctx = StateCtx {
            deps: &deps,
            label: "d",
        };
        let spec = FaultSpec::now(FaultKind::ApiVersionRetired { below: 60 });
        assert!(matches!(
            SchemaDrift.apply_state(&ctx, &spec),
            Err(FaultError::Unavailable { .. })
        ));
        let draw = Draw {
            intensity: 1,
            on_llm: true,
            max_latency: std::time::Duration::from_secs(1),
        };
        for name in kind_names::SCHEMA_DRIFT {
            let (kind, target, _) = SchemaDrift.explore(name, &draw).expect(name);
            assert_eq!(kind.name(), *name);
            assert_eq!(target.dependency, Some(DependencyName::Salesforce));
        }
    }
}
