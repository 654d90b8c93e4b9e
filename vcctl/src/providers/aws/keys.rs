//! SSH public keys, checked here before anything is sent anywhere: a private key given
//! where a public one belongs is refused, never uploaded.

/// Key types AWS and OpenSSH take.
const TYPES: [&str; 7] = [
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// The one OpenSSH public key line of `text` (`TYPE BASE64 [comment]`), or what is wrong.
pub fn parse_public_key(text: &str) -> Result<String, String> {
    if text.contains("PRIVATE KEY") {
        return Err("this is a private key: only its public half may leave this machine".into());
    }
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let [line] = lines.as_slice() else {
        return Err(format!("expected one public key line, found {}", lines.len()));
    };
    let mut fields = line.split_whitespace();
    let (kind, blob) = (fields.next().unwrap_or_default(), fields.next().unwrap_or_default());
    if !TYPES.contains(&kind) {
        let shown: String = kind.chars().take(40).collect();
        return Err(format!("`{shown}` is not an SSH public key type (expected one of {})", TYPES.join(", ")));
    }
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .map_err(|_| format!("the {kind} key is not valid base64"))?;
    // The blob starts with its own type, as a length-prefixed string.
    let inner =
        bytes.get(..4).map(|n| u32::from_be_bytes([n[0], n[1], n[2], n[3]]) as usize).and_then(|n| bytes.get(4..4 + n));
    if inner != Some(kind.as_bytes()) {
        return Err(format!("the key's data is not a {kind} key"));
    }
    Ok(line.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHZc8zMMkLu4yGxNXszUDHgeKYdKyvgsZ4cdECUaPxkC me@laptop\n";

    #[test]
    fn a_public_key_line_is_taken_as_it_is() {
        assert_eq!(parse_public_key(ED25519).unwrap(), ED25519.trim());
    }

    #[test]
    fn private_keys_and_other_files_are_refused() {
        let private = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----\n";
        assert!(parse_public_key(private).unwrap_err().contains("private key"));
        assert!(parse_public_key("").unwrap_err().contains("found 0"));
        assert!(parse_public_key("ssh-dss AAAA").unwrap_err().contains("not an SSH public key type"));
        assert!(parse_public_key("ssh-ed25519 !!!").unwrap_err().contains("not valid base64"));
        // The data of an RSA key under an ed25519 label.
        let mislabeled = "ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAABAQ";
        assert!(parse_public_key(mislabeled).is_err());
        assert!(parse_public_key(&format!("{ED25519}{ED25519}")).unwrap_err().contains("found 2"));
    }
}
