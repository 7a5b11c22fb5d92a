//! `HmacTokens` alone: minted tokens verify with the same secret until they expire, and
//! forged, altered, expired or malformed input is refused without panicking.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ghost_sync_layers::{HmacTokens, TokenClaims, TokenError, MAX_TOKEN_LEN};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// Splits a token into its four dot-separated parts.
fn parts(token: &str) -> Vec<String> {
    token.split('.').map(str::to_owned).collect()
}

#[test]
fn a_minted_token_verifies_to_its_claims() {
    let tokens = HmacTokens::new(SECRET);
    let token = tokens.mint("alice", at(2_000_000_000));

    assert_eq!(
        tokens.verify(token.as_bytes(), at(1_999_999_999)),
        Ok(TokenClaims {
            user_id: "alice".to_owned(),
            expires_at: at(2_000_000_000),
        })
    );
}

#[test]
fn the_token_format_is_versioned_hex_and_url_safe() {
    let token = HmacTokens::new(SECRET).mint("bob.é", at(1_700_000_000));
    let parts = parts(&token);

    assert_eq!(parts.len(), 4);
    assert_eq!(parts[0], "v1");
    assert_eq!(parts[1], "626f622ec3a9");
    assert_eq!(parts[2], "1700000000");
    assert_eq!(parts[3].len(), 64);
    assert!(token
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.'));
}

#[test]
fn the_signature_is_standard_hmac_sha256() {
    // A backend in another language must be able to mint tokens, so the
    // MAC must be plain HMAC-SHA256 over "v1.<hex user>.<expiry>".
    let token = HmacTokens::new(b"Jefe").mint("a", at(0));
    assert_eq!(parts(&token)[..3], ["v1", "61", "0"]);
    assert_eq!(parts(&token)[3], known_hmac_sha256(b"Jefe", b"v1.61.0"));
}

/// HMAC-SHA256 written out from RFC 2104 over the `sha2` crate, to pin the
/// construction independently of the `hmac` crate's API.
fn known_hmac_sha256(key: &[u8], message: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    block[..key.len()].copy_from_slice(key);
    let ipad: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(message)
        .finalize();
    let outer = Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize();
    outer.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn mint_for_expires_ttl_from_now() {
    let tokens = HmacTokens::new(SECRET);
    let before = SystemTime::now();
    let token = tokens.mint_for("carol", Duration::from_secs(60));

    let claims = tokens.verify(token.as_bytes(), before).expect("fresh");
    let ttl = claims
        .expires_at
        .duration_since(before)
        .expect("expiry after mint");
    // Expiry is kept to whole seconds, rounded down.
    assert!(ttl <= Duration::from_secs(60) && ttl > Duration::from_secs(58));
}

#[test]
fn a_huge_ttl_saturates_instead_of_panicking() {
    let tokens = HmacTokens::new(SECRET);
    let token = tokens.mint_for("dave", Duration::MAX);
    let claims = tokens
        .verify(token.as_bytes(), SystemTime::now())
        .expect("far-future token verifies");
    assert!(claims.expires_at > at(250_000_000_000));
}

#[test]
fn a_token_from_another_secret_is_refused() {
    let token = HmacTokens::new(b"another secret entirely").mint("alice", at(2_000_000_000));
    assert_eq!(
        HmacTokens::new(SECRET).verify(token.as_bytes(), at(0)),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn an_altered_user_id_or_expiry_is_refused() {
    let tokens = HmacTokens::new(SECRET);
    let token = tokens.mint("alice", at(1_000));
    let mut p = parts(&token);

    let mallory = p.clone();
    let mallory = [
        mallory[0].as_str(),
        "6d616c6c6f7279",
        &mallory[2],
        &mallory[3],
    ]
    .join(".");
    assert_eq!(
        tokens.verify(mallory.as_bytes(), at(0)),
        Err(TokenError::BadSignature)
    );

    p[2] = "9999999999".to_owned();
    let extended = p.join(".");
    assert_eq!(
        tokens.verify(extended.as_bytes(), at(2_000)),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn an_altered_signature_is_refused() {
    let tokens = HmacTokens::new(SECRET);
    let mut token = tokens.mint("alice", at(2_000)).into_bytes();
    let last = token.len() - 1;
    token[last] = if token[last] == b'0' { b'1' } else { b'0' };

    assert_eq!(tokens.verify(&token, at(0)), Err(TokenError::BadSignature));
}

#[test]
fn a_token_is_expired_from_its_expiry_second_on() {
    let tokens = HmacTokens::new(SECRET);
    let token = tokens.mint("alice", at(1_000));

    tokens
        .verify(token.as_bytes(), at(999))
        .expect("valid one second before");
    let err = tokens
        .verify(token.as_bytes(), at(1_000))
        .expect_err("expired at its expiry");

    assert_eq!(
        err,
        TokenError::Expired {
            expired_at: at(1_000)
        }
    );
    assert_eq!(err.to_string(), "token expired");
}

#[test]
fn a_forged_token_is_refused_as_forged_even_when_also_expired() {
    let token = HmacTokens::new(b"wrong").mint("alice", at(1));
    assert_eq!(
        HmacTokens::new(SECRET).verify(token.as_bytes(), at(5)),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn an_empty_user_id_never_verifies() {
    let tokens = HmacTokens::new(SECRET);
    let token = tokens.mint("", at(2_000));
    assert_eq!(
        tokens.verify(token.as_bytes(), at(0)),
        Err(TokenError::Malformed("empty user id"))
    );
}

#[test]
fn malformed_input_is_refused_without_panicking() {
    let tokens = HmacTokens::new(SECRET);
    let good = tokens.mint("alice", at(2_000));
    let p = parts(&good);
    let with = |i: usize, part: &str| {
        let mut p = p.clone();
        p[i] = part.to_owned();
        p.join(".")
    };

    let cases: Vec<(Vec<u8>, &str)> = vec![
        (Vec::new(), "empty"),
        (vec![b'a'; MAX_TOKEN_LEN + 1], "too long"),
        (vec![0xff, 0xfe, b'.', b'.'], "not utf-8"),
        (b"garbage".to_vec(), "wrong number of parts"),
        (b"....".to_vec(), "wrong number of parts"),
        (
            format!("{good}.extra").into_bytes(),
            "wrong number of parts",
        ),
        (with(0, "v2").into_bytes(), "unknown version"),
        (with(1, "zz").into_bytes(), "user id is not hex"),
        (with(1, "616").into_bytes(), "user id is not hex"),
        (with(1, "414C").into_bytes(), "user id is not hex"),
        (with(1, "ff").into_bytes(), "user id is not utf-8"),
        (with(2, "").into_bytes(), "bad expiry"),
        (with(2, "+2000").into_bytes(), "bad expiry"),
        (with(2, "-1").into_bytes(), "bad expiry"),
        (
            with(2, "99999999999999999999999").into_bytes(),
            "bad expiry",
        ),
        (with(2, "18446744073709551615").into_bytes(), "bad expiry"),
        (with(3, "abcd").into_bytes(), "bad signature encoding"),
        (
            with(3, &p[3].to_uppercase()).into_bytes(),
            "bad signature encoding",
        ),
        (with(3, "é").into_bytes(), "bad signature encoding"),
    ];
    for (input, why) in cases {
        assert_eq!(
            tokens.verify(&input, at(0)),
            Err(TokenError::Malformed(why)),
            "{:?}",
            String::from_utf8_lossy(&input)
        );
    }
    assert_eq!(
        TokenError::Malformed("bad expiry").to_string(),
        "malformed token: bad expiry"
    );
}

#[test]
fn a_token_at_the_length_limit_is_still_read() {
    let tokens = HmacTokens::new(SECRET);
    // v1. + 2n hex + . + 1 digit + . + 64 = 2n + 70 bytes.
    let user = "u".repeat((MAX_TOKEN_LEN - 70) / 2);
    let token = tokens.mint(&user, at(9));
    assert_eq!(token.len(), MAX_TOKEN_LEN);

    let claims = tokens
        .verify(token.as_bytes(), at(0))
        .expect("at the limit");
    assert_eq!(claims.user_id, user);
}

#[test]
fn errors_never_show_the_secret_or_the_expected_signature() {
    let tokens = HmacTokens::new(SECRET);
    let good = tokens.mint("alice", at(2_000));
    let expected_mac = parts(&good)[3].clone();
    let forged = good.replace("616c696365", "6576");

    let err = tokens.verify(forged.as_bytes(), at(0)).expect_err("forged");
    for shown in [err.to_string(), format!("{err:?}")] {
        assert!(!shown.contains(&expected_mac), "{shown}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
    }
    assert_eq!(err.to_string(), "token signature invalid");
}

#[test]
fn debug_hides_the_secret() {
    let tokens = HmacTokens::new("hunter2-very-secret");
    let shown = format!("{tokens:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(!shown.contains(&hex("hunter2-very-secret")), "{shown}");
    assert!(shown.contains("redacted"), "{shown}");
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn clones_verify_each_others_tokens() {
    let tokens = HmacTokens::new(SECRET);
    let token = tokens.clone().mint("alice", at(2_000));
    assert!(tokens.verify(token.as_bytes(), at(0)).is_ok());
}
