//! The parts of an Amazon Resource Name that Ferry checks before any call: an ARN's six
//! `:`-separated fields and its 12-digit account, shared by the configuration's checks (role,
//! SNS topic) and bootstrap's (trusted principals).

/// An ARN's six fields, `arn:<partition>:<service>:<region>:<account>:<resource>`; the resource
/// keeps any further `:`. `None` when there are fewer than six.
pub fn arn_fields(arn: &str) -> Option<[&str; 6]> {
    let mut parts = arn.splitn(6, ':');
    Some([
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    ])
}

/// An AWS account id: 12 digits.
pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_fields_and_twelve_digits() {
        assert_eq!(
            arn_fields("arn:aws:iam::111111111111:role/a:b"),
            Some(["arn", "aws", "iam", "", "111111111111", "role/a:b"])
        );
        assert_eq!(arn_fields("arn:aws:iam::111111111111"), None);
        assert!(is_account_id("111111111111"));
        assert!(!is_account_id("11111111111") && !is_account_id("11111111111x"));
    }
}
