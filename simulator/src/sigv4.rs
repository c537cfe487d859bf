//! SigV4 verification: the expected signature is recomputed with `aws-sigv4` over exactly the
//! headers the client says it signed, at the time it says it signed.

use super::wire::{AwsError, ErrorCode};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use http::HeaderMap;
use std::time::{Duration, SystemTime};

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const SECURITY_TOKEN_HEADER: &str = "x-amz-security-token";
/// AWS rejects requests whose date is further than this from its clock.
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(15 * 60);

/// Checks SigV4 signatures; which secret goes with which access key id is asked per request.
pub(crate) struct Verifier {
    settings: SigningSettings,
}

/// The parts of `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
struct AuthorizationHeader<'a> {
    access_key_id: &'a str,
    scope_date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

impl Verifier {
    pub(crate) fn new() -> Self {
        let mut settings = SigningSettings::default();
        // Sign exactly what the client listed, whatever its own exclusions were.
        settings.excluded_headers = Some(Vec::new());
        Self { settings }
    }

    /// Returns the region of the credential scope, and what `key` said of the access key id,
    /// when the request is correctly signed for `service`. `key` answers the secret of the
    /// access key id the request names (and whatever else the caller wants to know of it), or
    /// the error to answer (unknown key, wrong session token, expired credentials).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn verify<'r, T>(
        &self,
        service: &str,
        method: &str,
        path_and_query: &str,
        headers: &'r HeaderMap,
        body: &[u8],
        now: SystemTime,
        key: impl FnOnce(&str) -> Result<(String, T), AwsError>,
    ) -> Result<(&'r str, T), AwsError> {
        let Some(authorization) = headers.get(http::header::AUTHORIZATION) else {
            return Err(AwsError::new(
                ErrorCode::MissingAuthenticationToken,
                "Missing Authentication Token",
            ));
        };
        let authorization = authorization
            .to_str()
            .ok()
            .and_then(AuthorizationHeader::parse)
            .ok_or_else(|| {
                AwsError::new(
                    ErrorCode::IncompleteSignature,
                    "Authorization header requires 'Credential', 'Signature' and \
                     'SignedHeaders' parameters of algorithm AWS4-HMAC-SHA256.",
                )
            })?;
        let (secret_access_key, known) = key(authorization.access_key_id)?;
        let amz_date = headers
            .get("x-amz-date")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                AwsError::new(
                    ErrorCode::IncompleteSignature,
                    "Authorization header requires existence of a valid 'X-Amz-Date' header.",
                )
            })?;
        let signed_at = parse_amz_date(amz_date).ok_or_else(|| {
            AwsError::new(
                ErrorCode::IncompleteSignature,
                format!("X-Amz-Date {amz_date:?} is not of the form 20161128T123456Z."),
            )
        })?;
        let skew = now
            .duration_since(signed_at)
            .or_else(|_| signed_at.duration_since(now))
            .unwrap_or(Duration::MAX);
        if skew > MAX_CLOCK_SKEW {
            return Err(AwsError::new(
                ErrorCode::RequestExpired,
                format!(
                    "Request has expired: X-Amz-Date {amz_date} is more than 15 minutes away from the server's time."
                ),
            ));
        }
        if authorization.service != service {
            return Err(invalid_signature(format!(
                "Credential should be scoped to correct service: '{service}'."
            )));
        }
        if !amz_date.starts_with(authorization.scope_date) || authorization.scope_date.len() != 8 {
            return Err(invalid_signature(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
                 from HTTP.",
            ));
        }
        let names: Vec<&str> = authorization.signed_headers.split(';').collect();
        if !names.contains(&"host") {
            // aws-sigv4 would otherwise derive a host the client never signed.
            return Err(AwsError::new(
                ErrorCode::IncompleteSignature,
                "The 'Host' header must be signed.",
            ));
        }
        let mut signed = Vec::with_capacity(names.len());
        let mut session_token = None;
        for name in names {
            let mut values = headers.get_all(name).iter().peekable();
            if values.peek().is_none() {
                return Err(invalid_signature(format!(
                    "Header {name:?} is listed in SignedHeaders but missing from the request."
                )));
            }
            for value in values {
                let value = value.to_str().map_err(|_| {
                    invalid_signature(format!("Signed header {name:?} is not visible ASCII."))
                })?;
                if name == SECURITY_TOKEN_HEADER {
                    // Through the identity: aws-sigv4 then signs it as a sensitive header and
                    // redacts it when it traces the request, which it does not for the
                    // request's own headers.
                    session_token = Some(value);
                } else {
                    signed.push((name, value));
                }
            }
        }
        let expected = self.expected_signature(
            Signer {
                access_key_id: authorization.access_key_id,
                secret_access_key: &secret_access_key,
                session_token,
                region: authorization.region,
                service,
                signed_at,
            },
            method,
            path_and_query,
            signed,
            body,
        )?;
        if !constant_time_eq(expected.as_bytes(), authorization.signature.as_bytes()) {
            return Err(invalid_signature(
                "The request signature we calculated does not match the signature you provided. \
                 Check your AWS Secret Access Key and signing method.",
            ));
        }
        Ok((authorization.region, known))
    }

    fn expected_signature(
        &self,
        signer: Signer<'_>,
        method: &str,
        path_and_query: &str,
        headers: Vec<(&str, &str)>,
        body: &[u8],
    ) -> Result<String, AwsError> {
        let unsignable = |e: &dyn std::fmt::Display| invalid_signature(format!("{e}"));
        // The session token only when the client signed it: aws-sigv4 adds it to the signed
        // headers itself.
        let identity: Identity = Credentials::new(
            signer.access_key_id,
            signer.secret_access_key,
            signer.session_token.map(str::to_owned),
            None,
            "lightsail-sim",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(signer.region)
            .name(signer.service)
            .time(signer.signed_at)
            .settings(self.settings.clone())
            .build()
            .map_err(|e| unsignable(&e))?
            .into();
        let request = SignableRequest::new(
            method,
            path_and_query,
            headers.into_iter(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| unsignable(&e))?;
        let output = sign(request, &params).map_err(|e| unsignable(&e))?;
        Ok(output.signature().to_owned())
    }
}

/// Whose signature to recompute, where and when.
struct Signer<'a> {
    access_key_id: &'a str,
    secret_access_key: &'a str,
    /// `x-amz-security-token`, when among the signed headers.
    session_token: Option<&'a str>,
    region: &'a str,
    service: &'a str,
    signed_at: SystemTime,
}

/// The access key id a request's `Authorization` header names, whether or not the signature
/// holds; none when the request is unsigned or the header is malformed.
pub(crate) fn claimed_access_key_id(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    AuthorizationHeader::parse(value).map(|header| header.access_key_id)
}

impl<'a> AuthorizationHeader<'a> {
    fn parse(value: &'a str) -> Option<Self> {
        let rest = value.strip_prefix(ALGORITHM)?.trim_start();
        let (mut credential, mut signed_headers, mut signature) = (None, None, None);
        for part in rest.split(',') {
            let (key, val) = part.trim().split_once('=')?;
            match key {
                "Credential" => credential = Some(val),
                "SignedHeaders" => signed_headers = Some(val),
                "Signature" => signature = Some(val),
                _ => return None,
            }
        }
        let mut scope = credential?.split('/');
        let header = Self {
            access_key_id: scope.next()?,
            scope_date: scope.next()?,
            region: scope.next()?,
            service: scope.next()?,
            signed_headers: signed_headers?,
            signature: signature?,
        };
        let well_formed = scope.next() == Some("aws4_request")
            && scope.next().is_none()
            && !header.region.is_empty()
            && !header.signed_headers.is_empty();
        well_formed.then_some(header)
    }
}

fn invalid_signature(message: impl Into<String>) -> AwsError {
    AwsError::new(ErrorCode::InvalidSignature, message)
}

/// `20161128T123456Z` → the instant it names (UTC).
fn parse_amz_date(text: &str) -> Option<SystemTime> {
    let datetime = jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", text).ok()?;
    let timestamp = datetime.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp();
    Some(timestamp.into())
}

/// Compares secrets (signatures, tokens) without revealing where they first differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_header_parses_with_and_without_spaces() {
        let spaced = "AWS4-HMAC-SHA256 Credential=AKID/20240102/eu-west-1/lightsail/aws4_request, \
                      SignedHeaders=host;x-amz-date, Signature=abcd";
        let parsed = AuthorizationHeader::parse(spaced);
        assert!(parsed.as_ref().is_some_and(|h| h.access_key_id == "AKID"
            && h.scope_date == "20240102"
            && h.region == "eu-west-1"
            && h.signed_headers == "host;x-amz-date"
            && h.signature == "abcd"));
        let tight = "AWS4-HMAC-SHA256 Credential=AKID/20240102/eu-west-1/lightsail/aws4_request,SignedHeaders=host,Signature=ab";
        assert!(AuthorizationHeader::parse(tight).is_some());
        for bad in [
            "AWS4-HMAC-SHA1 Credential=A/20240102/r/lightsail/aws4_request, SignedHeaders=host, Signature=ab",
            "AWS4-HMAC-SHA256 Credential=A/20240102/r/lightsail, SignedHeaders=host, Signature=ab",
            "AWS4-HMAC-SHA256 Credential=A/20240102/r/lightsail/aws4_request, Signature=ab",
            "AWS4-HMAC-SHA256 garbage",
        ] {
            assert!(AuthorizationHeader::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn amz_dates_parse_as_utc() {
        let parsed = parse_amz_date("19700101T000102Z");
        assert_eq!(
            parsed.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok()),
            Some(Duration::from_secs(62))
        );
        assert!(parse_amz_date("1970-01-01T00:01:02Z").is_none());
    }
}
