//! SOQL over the mock's records: results, pagination, relationships, and errors with row/column.

mod common;

use common::*;
use crashcart_mocks::MockSalesforce;
use reqwest::Method;
use serde_json::{json, Value};

async fn seeded() -> (Org, Vec<String>) {
    let org = Org::with(MockSalesforce::builder().query_page_size(4)).await;
    let h = org.sf.handle();
    let mut ids = vec![];
    for (i, (first, last, lang)) in [
        ("Ada", "Lovelace", Some("English")),
        ("Grace", "Hopper", Some("Spanish")),
        ("Alan", "Turing", None),
        ("Edsger", "Dijkstra", Some("German")),
        ("Barbara", "Liskov", Some("English")),
        ("Ken", "Thompson", None),
    ]
    .iter()
    .enumerate()
    {
        let mut body = json!({"FirstName": first, "LastName": last, "Patient_External_Id__c": format!("CC-{i}"), "Birthdate": format!("19{}0-01-0{}", 4 + i, 1 + i)});
        if let Some(l) = lang {
            body["Preferred_Language__c"] = json!(l);
        }
        ids.push(h.insert("Contact", body).unwrap());
    }
    (org, ids)
}

fn last_names(r: &Resp) -> Vec<String> {
    r.json["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["LastName"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn where_order_limit_offset() {
    let (org, _) = seeded().await;
    let r = org.query("SELECT Id, LastName FROM Contact WHERE Preferred_Language__c = 'english' ORDER BY LastName").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        last_names(&r),
        vec!["Liskov", "Lovelace"],
        "text equality is case-insensitive"
    );
    assert_eq!(r.json["totalSize"], 2);
    assert_eq!(r.json["done"], true);
    assert!(r.json.get("nextRecordsUrl").is_none());

    let cases = [
        ("SELECT LastName FROM Contact WHERE Preferred_Language__c = null ORDER BY LastName", vec!["Thompson", "Turing"]),
        ("SELECT LastName FROM Contact WHERE Preferred_Language__c != null AND (LastName LIKE 'L%' OR FirstName = 'Grace') ORDER BY LastName DESC", vec!["Lovelace", "Liskov", "Hopper"]),
        ("SELECT LastName FROM Contact WHERE NOT LastName LIKE '%o%' ORDER BY LastName", vec!["Dijkstra", "Turing"]),
        ("SELECT LastName FROM Contact WHERE Preferred_Language__c IN ('German', 'Spanish') ORDER BY LastName", vec!["Dijkstra", "Hopper"]),
        ("SELECT LastName FROM Contact WHERE Preferred_Language__c NOT IN ('English') ORDER BY LastName", vec!["Dijkstra", "Hopper", "Thompson", "Turing"]),
        ("SELECT LastName FROM Contact WHERE Birthdate >= 1970-01-01 ORDER BY Birthdate DESC", vec!["Thompson", "Liskov", "Dijkstra"]),
        ("SELECT LastName FROM Contact ORDER BY Preferred_Language__c NULLS LAST, LastName LIMIT 3", vec!["Liskov", "Lovelace", "Dijkstra"]),
        ("SELECT LastName FROM Contact ORDER BY Preferred_Language__c DESC NULLS FIRST, LastName LIMIT 3", vec!["Thompson", "Turing", "Hopper"]),
        ("SELECT LastName FROM Contact ORDER BY LastName LIMIT 2 OFFSET 1", vec!["Hopper", "Liskov"]),
    ];
    for (q, want) in cases {
        let r = org.query(q).await;
        assert_eq!(r.status, 200, "{q}: {}", r.text);
        assert_eq!(last_names(&r), want, "{q}");
    }
    let count = org
        .query("SELECT COUNT() FROM Contact WHERE Preferred_Language__c = 'English'")
        .await;
    assert_eq!(
        count.json,
        json!({"totalSize": 2, "done": true, "records": []})
    );
}

#[tokio::test]
async fn pagination_follows_next_records_url() {
    let (org, _) = seeded().await;
    let first = org
        .query("SELECT Id, LastName FROM Contact ORDER BY LastName")
        .await;
    assert_eq!(first.json["totalSize"], 6);
    assert_eq!(first.json["done"], false);
    assert_eq!(first.json["records"].as_array().unwrap().len(), 4);
    let next = first.json["nextRecordsUrl"].as_str().unwrap();
    assert!(next.starts_with("/services/data/v59.0/query/01g"), "{next}");
    let second = org
        .call(Method::GET, &format!("{}{next}", org.base), None)
        .await;
    assert_eq!(second.status, 200);
    assert_eq!(second.json["done"], true);
    assert!(second.json.get("nextRecordsUrl").is_none());
    assert_eq!(last_names(&second), vec!["Thompson", "Turing"]);
    let bogus = org
        .call(
            Method::GET,
            &format!("{}/services/data/v59.0/query/01gXXXXXXXXXXXX-4", org.base),
            None,
        )
        .await;
    assert_eq!(bogus.status, 400);
    assert_eq!(bogus.error_code(), "INVALID_QUERY_LOCATOR");
}

#[tokio::test]
async fn query_all_sees_deleted_records() {
    let (org, ids) = seeded().await;
    assert_eq!(
        org.delete(&format!("/sobjects/Contact/{}", ids[0]))
            .await
            .status,
        204
    );
    let live = org.query("SELECT COUNT() FROM Contact").await;
    assert_eq!(live.json["totalSize"], 5);
    let url = reqwest::Url::parse_with_params(
        &org.data("/queryAll"),
        &[(
            "q",
            "SELECT Id, IsDeleted FROM Contact WHERE IsDeleted = true",
        )],
    )
    .unwrap();
    let all = org.call(Method::GET, url.as_str(), None).await;
    assert_eq!(all.json["totalSize"], 1);
    assert_eq!(all.json["records"][0]["Id"], ids[0].as_str());
    assert_eq!(all.json["records"][0]["IsDeleted"], true);
}

#[tokio::test]
async fn parent_relationships_render_nested_records() {
    let (org, ids) = seeded().await;
    let h = org.sf.handle();
    let owner = h.user_id("dr.adams@crashcart.test").unwrap();
    h.insert("Event", json!({"Subject": "Visit", "WhoId": ids[1], "OwnerId": owner, "StartDateTime": "2030-05-01T09:00:00Z", "EndDateTime": "2030-05-01T09:30:00Z", "Booking_Key__c": "BK-1"})).unwrap();
    h.insert("Event", json!({"Subject": "Admin", "OwnerId": owner, "StartDateTime": "2030-05-01T10:00:00Z", "EndDateTime": "2030-05-01T10:30:00Z"})).unwrap();
    let r = org.query("SELECT Subject, Who.Name, Who.Id, Owner.Name FROM Event WHERE Owner.Name = 'Ada Adams' ORDER BY StartDateTime").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let recs = r.json["records"].as_array().unwrap();
    assert_eq!(recs[0]["Who"]["Name"], "Grace Hopper");
    assert_eq!(recs[0]["Who"]["Id"], ids[1].as_str());
    assert_eq!(recs[0]["Who"]["attributes"]["type"], "Contact");
    assert_eq!(recs[0]["Owner"]["Name"], "Ada Adams");
    assert!(recs[1]["Who"].is_null(), "no parent renders as null");
    let dt = org
        .query("SELECT Id FROM Event WHERE StartDateTime > 2030-05-01T09:30:00Z")
        .await;
    assert_eq!(dt.json["totalSize"], 1);
    let by_id = org
        .query(&format!(
            "SELECT LastName FROM Contact WHERE Id = '{}'",
            &ids[2][..15]
        ))
        .await;
    assert_eq!(last_names(&by_id), vec!["Turing"], "15-character ids match");
}

#[tokio::test]
async fn query_errors_carry_codes_rows_and_columns() {
    let (org, _) = seeded().await;
    let cases = [
        (
            "SELECT Id FRM Contact",
            "MALFORMED_QUERY",
            "ERROR at Row:1:Column:11\nunexpected token: 'FRM'",
        ),
        (
            "SELECT Id, Nme FROM Contact",
            "INVALID_FIELD",
            "ERROR at Row:1:Column:12\nNo such column 'Nme' on entity 'Contact'",
        ),
        (
            "SELECT Id FROM Contactz",
            "INVALID_TYPE",
            "ERROR at Row:1:Column:16\nsObject type 'Contactz' is not supported",
        ),
        (
            "SELECT Id FROM Event WHERE Whoo.Name = 'x'",
            "INVALID_FIELD",
            "Didn't understand relationship 'Whoo'",
        ),
        (
            "SELECT Id FROM Contact WHERE LastName = 5",
            "INVALID_QUERY_FILTER_OPERATOR",
            "must be of type string and should be enclosed in quotes",
        ),
        (
            "SELECT Id FROM Contact WHERE Birthdate = '1980-01-01'",
            "INVALID_QUERY_FILTER_OPERATOR",
            "must be of type date and should not be enclosed in quotes",
        ),
        (
            "SELECT Id FROM Contact WHERE Id = 'zzz'",
            "INVALID_QUERY_FILTER_OPERATOR",
            "invalid ID field: zzz",
        ),
        (
            "SELECT Id FROM Contact OFFSET 2001",
            "NUMBER_OUTSIDE_VALID_RANGE",
            "Maximum SOQL offset allowed is 2000",
        ),
        (
            "SELECT Id, Id FROM Contact",
            "MALFORMED_QUERY",
            "duplicate field selected: Id",
        ),
    ];
    for (q, code, needle) in cases {
        let r = org.query(q).await;
        assert_eq!(r.status, 400, "{q}");
        assert_eq!(r.error_code(), code, "{q}: {}", r.text);
        assert!(r.message().contains(needle), "{q}: {}", r.message());
    }
    let first = org.query("SELECT Id, Nme FROM Contact").await;
    assert_eq!(first.message(), "\nSELECT Id, Nme FROM Contact\n           ^\nERROR at Row:1:Column:12\nNo such column 'Nme' on entity 'Contact'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.");
    let missing = org.get("/query").await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.error_code(), "MALFORMED_QUERY");
}

/// Relative date literals count from the org's today (the mock's clock): created records
/// are `TODAY`, a birthdate decades ago is in `LAST_N_YEARS:100` but not `LAST_N_DAYS:30`.
#[tokio::test]
async fn relative_date_literals() {
    let (org, ids) = seeded().await;
    let count = |soql: &'static str| {
        let org = &org;
        async move {
            let r = org.query(soql).await;
            assert_eq!(r.status, 200, "{soql}: {}", r.text);
            r.json["totalSize"].as_u64().unwrap()
        }
    };
    assert_eq!(
        count("SELECT Id FROM Contact WHERE CreatedDate = TODAY").await,
        6
    );
    assert_eq!(
        count("SELECT Id FROM Contact WHERE CreatedDate = LAST_N_DAYS:1").await,
        6
    );
    assert_eq!(
        count("SELECT Id FROM Contact WHERE CreatedDate > TODAY").await,
        0
    );
    assert_eq!(
        count("SELECT Id FROM Contact WHERE CreatedDate < YESTERDAY").await,
        0
    );
    assert_eq!(
        count("SELECT Id FROM Contact WHERE CreatedDate >= THIS_MONTH").await,
        6
    );
    assert_eq!(
        count("SELECT Id FROM Contact WHERE Birthdate = LAST_N_DAYS:30").await,
        0
    );
    assert_eq!(
        count("SELECT Id FROM Contact WHERE Birthdate < LAST_N_YEARS:20").await,
        6
    );
    assert_eq!(
        count("SELECT Id FROM Contact WHERE Birthdate != TODAY").await,
        6
    );
    // A date literal needs a date field, and the N forms need their number.
    let r = org
        .query("SELECT Id FROM Contact WHERE LastName = TODAY")
        .await;
    assert_eq!(
        r.error_code(),
        "INVALID_QUERY_FILTER_OPERATOR",
        "{}",
        r.text
    );
    let r = org
        .query("SELECT Id FROM Contact WHERE CreatedDate = LAST_N_DAYS")
        .await;
    assert_eq!(r.error_code(), "MALFORMED_QUERY", "{}", r.text);
    assert!(!ids.is_empty());
}

#[tokio::test]
async fn aggregates_group_by_and_having() {
    let (org, _) = seeded().await;
    let r = org
        .query("SELECT COUNT(Id), COUNT_DISTINCT(Preferred_Language__c) langs, MIN(Birthdate), MAX(LastName) FROM Contact")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["totalSize"], 1);
    let row = &r.json["records"][0];
    assert_eq!(row["attributes"]["type"], "AggregateResult");
    assert_eq!(row["expr0"], 6, "{row}");
    assert_eq!(row["langs"], 3, "English, Spanish, German: {row}");
    assert_eq!(
        row["expr1"], "1940-01-01",
        "unaliased aggregates count on: {row}"
    );
    assert_eq!(row["expr2"], "Turing");
    let r = org
        .query("SELECT Preferred_Language__c, COUNT(Id) n FROM Contact GROUP BY Preferred_Language__c HAVING COUNT(Id) > 1 ORDER BY Preferred_Language__c NULLS FIRST")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rows = r.json["records"].as_array().unwrap();
    let got: Vec<(Value, Value)> = rows
        .iter()
        .map(|r| (r["Preferred_Language__c"].clone(), r["n"].clone()))
        .collect();
    assert_eq!(
        got,
        vec![(Value::Null, json!(2)), (json!("English"), json!(2))]
    );
    assert_eq!(r.json["totalSize"], 2);
    // No row matches: one row of empty aggregates, as Salesforce answers.
    let r = org
        .query("SELECT COUNT(Id), MAX(LastName) FROM Contact WHERE LastName = 'Nobody'")
        .await;
    assert_eq!(r.json["records"][0]["expr0"], 0, "{}", r.text);
    assert!(r.json["records"][0]["expr1"].is_null());
    // Salesforce's refusals.
    for (soql, code) in [
        ("SELECT LastName, COUNT(Id) FROM Contact", "MALFORMED_QUERY"),
        ("SELECT SUM(LastName) FROM Contact", "MALFORMED_QUERY"),
        (
            "SELECT Id FROM Contact WHERE COUNT(Id) > 1",
            "MALFORMED_QUERY",
        ),
        ("SELECT COUNT(Nope__c) FROM Contact", "INVALID_FIELD"),
    ] {
        let r = org.query(soql).await;
        assert_eq!(
            (r.status.as_u16(), r.error_code()),
            (400, code),
            "{soql}: {}",
            r.text
        );
    }
}

#[tokio::test]
async fn child_subqueries_nest_each_parents_children() {
    let (org, ids) = seeded().await;
    let h = org.sf.handle();
    for (who, subject, start) in [
        (&ids[0], "Checkup", "2030-01-02T09:00:00Z"),
        (&ids[0], "Follow-up", "2030-01-01T09:00:00Z"),
        (&ids[0], "Cancelled", "2030-01-03T09:00:00Z"),
        (&ids[1], "Intake", "2030-02-01T09:00:00Z"),
    ] {
        let end = start.replace("09:00", "09:30");
        let body =
            json!({"WhoId": who, "Subject": subject, "StartDateTime": start, "EndDateTime": end});
        h.insert("Event", body).unwrap();
    }
    let r = org
        .query("SELECT LastName, (SELECT Subject FROM Events WHERE Subject != 'Cancelled' ORDER BY StartDateTime LIMIT 5) FROM Contact WHERE Patient_External_Id__c IN ('CC-0', 'CC-1', 'CC-2') ORDER BY Patient_External_Id__c")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rows = r.json["records"].as_array().unwrap();
    let subjects = |row: &Value| -> Vec<String> {
        row["Events"]["records"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| e["Subject"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(subjects(&rows[0]), ["Follow-up", "Checkup"], "{}", r.text);
    assert_eq!(rows[0]["Events"]["totalSize"], 2);
    assert_eq!(rows[0]["Events"]["done"], true);
    assert_eq!(
        rows[0]["Events"]["records"][0]["attributes"]["type"],
        "Event"
    );
    assert_eq!(subjects(&rows[1]), ["Intake"]);
    assert!(
        rows[2]["Events"].is_null(),
        "no children is null: {}",
        rows[2]
    );
    // The describe names the relationship the subquery uses.
    let d = org.get("/sobjects/Contact/describe").await;
    let rels = d.json["childRelationships"].as_array().unwrap();
    assert!(rels
        .iter()
        .any(|c| c["childSObject"] == "Event" && c["relationshipName"] == "Events"));
    for (soql, code) in [
        (
            "SELECT Id, (SELECT Id FROM Visits) FROM Contact",
            "INVALID_TYPE",
        ),
        (
            "SELECT Id, (SELECT Nope__c FROM Events) FROM Contact",
            "INVALID_FIELD",
        ),
        (
            "SELECT COUNT(), (SELECT Id FROM Events) FROM Contact",
            "MALFORMED_QUERY",
        ),
        (
            "SELECT Id, (SELECT Id, (SELECT Id FROM Cases) FROM Events) FROM Contact",
            "MALFORMED_QUERY",
        ),
    ] {
        let r = org.query(soql).await;
        assert_eq!(
            (r.status.as_u16(), r.error_code()),
            (400, code),
            "{soql}: {}",
            r.text
        );
    }
}

/// `Sforce-Query-Options: batchSize=n` sets the page size (within 200 to 2,000) for the
/// whole cursor.
#[tokio::test]
async fn batch_size_header_sets_the_page_size() {
    let org = Org::start().await;
    let h = org.sf.handle();
    for i in 0..450 {
        h.insert("Contact", json!({"LastName": format!("P{i:03}")}))
            .unwrap();
    }
    let q = "/query?q=SELECT+Id+FROM+Contact";
    let first = org
        .call_with(
            Method::GET,
            q,
            None,
            &[("Sforce-Query-Options", "batchSize=200")],
        )
        .await;
    assert_eq!(
        first.json["records"].as_array().unwrap().len(),
        200,
        "{}",
        first.text
    );
    assert_eq!(first.json["totalSize"], 450);
    let next = first.json["nextRecordsUrl"].as_str().unwrap();
    let url = format!("{}{next}", org.base);
    let second = org.call(Method::GET, &url, None).await;
    assert_eq!(second.json["records"].as_array().unwrap().len(), 200);
    // Below Salesforce's floor, the floor holds; without the header, the default page.
    let small = org
        .call_with(
            Method::GET,
            q,
            None,
            &[("Sforce-Query-Options", "batchSize=10")],
        )
        .await;
    assert_eq!(small.json["records"].as_array().unwrap().len(), 200);
    let whole = org.call(Method::GET, q, None).await;
    assert_eq!(whole.json["records"].as_array().unwrap().len(), 450);
}
