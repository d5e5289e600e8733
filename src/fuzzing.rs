//! Entry points for the cargo-fuzz targets in `fuzz/` (feature `fuzzing` only): each
//! takes arbitrary bytes through one part that reads untrusted input, and must never
//! panic, whatever it returns.

/// The policy loader, and the case-file parser, on arbitrary text.
pub fn policy_loader(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(policy) = crate::policy::Policy::parse(text) {
            let _ = policy.warnings();
        }
        let _ = crate::policy::parse_cases(text);
    }
}

/// A request body through the JSON parser and the input rules, as the update service
/// reads it.
pub fn request_body(data: &[u8]) {
    if let Ok(body) = serde_json::from_slice::<crate::update::UpdateBody>(data) {
        let _ = crate::input::AttributeChanges::parse(body.attributes);
    }
}

/// A token's header and claims, before any signature is checked: the header, `crit`,
/// the claims' times, the roles and the named claims.
pub fn jwt_preflight(data: &[u8]) {
    if let Ok(token) = std::str::from_utf8(data)
        && let Ok((_, claims)) = crate::auth::preflight(token, 30, 86_400)
    {
        let names = [("tenant".to_owned(), "/tenant_id".to_owned())];
        let _ = crate::auth::caller_facts(&claims, "/roles", &names);
    }
}
