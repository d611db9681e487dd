//! Salesforce record ids: 15-character case-sensitive bodies with an 18-character
//! case-insensitive form (a 3-character checksum suffix), prefixed by the object's key prefix.

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const SUFFIX: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

/// The 3-character checksum suffix that turns a 15-character id into its 18-character form.
pub fn checksum(id15: &str) -> String {
    let bytes = id15.as_bytes();
    let mut out = String::with_capacity(3);
    for chunk in 0..3 {
        let mut bits = 0usize;
        for i in 0..5 {
            if bytes
                .get(chunk * 5 + i)
                .is_some_and(|b| b.is_ascii_uppercase())
            {
                bits |= 1 << i;
            }
        }
        out.push(SUFFIX[bits] as char);
    }
    out
}

/// Build an 18-character id from a key prefix, a 3-character instance marker and a counter.
pub fn make_id(key_prefix: &str, instance: &str, counter: u64) -> String {
    let mut body = [b'0'; 9];
    let mut n = counter;
    for slot in body.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    let mut id15 = String::with_capacity(18);
    id15.push_str(key_prefix);
    id15.push_str(instance);
    id15.push_str(std::str::from_utf8(&body).unwrap_or("000000000"));
    let sum = checksum(&id15);
    id15.push_str(&sum);
    id15
}

/// Normalise a client-supplied id to its 18-character form, or `None` if malformed.
///
/// A 15-character id is case-sensitive and gets its checksum; an 18-character id is
/// case-insensitive, so its body's case is restored from the checksum.
pub fn normalize(id: &str) -> Option<String> {
    if !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    match id.len() {
        15 => Some(format!("{id}{}", checksum(id))),
        18 => {
            let (body, sum) = id.split_at(15);
            let sum = sum.to_ascii_uppercase();
            let mut restored = String::with_capacity(18);
            for (chunk, s) in sum.bytes().enumerate() {
                let bits = SUFFIX.iter().position(|&c| c == s)?;
                for i in 0..5 {
                    let c = body.as_bytes()[chunk * 5 + i] as char;
                    restored.push(if bits & (1 << i) != 0 {
                        c.to_ascii_uppercase()
                    } else {
                        c.to_ascii_lowercase()
                    });
                }
            }
            // A letter the checksum says is uppercase must be a letter; digits are unaffected.
            let expect = checksum(&restored);
            if expect != sum {
                return None;
            }
            restored.push_str(&sum);
            Some(restored)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_salesforce_checksum() {
        // A documented example pair: 001A000000K3Trf ⇔ 001A000000K3TrfIAF.
        assert_eq!(checksum("001A000000K3Trf"), "IAF");
        assert_eq!(normalize("001A000000K3Trf").unwrap(), "001A000000K3TrfIAF");
        assert_eq!(
            normalize("001a000000k3trfIAF").unwrap(),
            "001A000000K3TrfIAF"
        );
    }

    #[test]
    fn make_id_roundtrips() {
        let id = make_id("003", "8c0", 12345);
        assert_eq!(id.len(), 18);
        assert!(id.starts_with("0038c0"));
        assert_eq!(normalize(&id).unwrap(), id);
        assert_eq!(normalize(&id[..15]).unwrap(), id);
        assert!(normalize("003-bad").is_none());
        assert!(normalize("0038c000000000Z").is_some());
    }
}
