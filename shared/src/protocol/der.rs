//! A minimal DER reader: enough for ECDSA signatures (KMS returns DER, JOSE wants `r||s`) and
//! SubjectPublicKeyInfo (KMS `GetPublicKey` returns SPKI DER). Every failure is `None`;
//! nothing here panics on any input.

/// One TLV: its tag and contents, and what follows it.
fn read_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let mut len = 0usize;
        for &b in &rest[..n] {
            len = (len << 8) | b as usize;
        }
        if len < 0x80 {
            return None; // not minimal: DER forbids it
        }
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// Reads a TLV with the expected tag.
pub fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    match read_tlv(input)? {
        (t, content, rest) if t == tag => Some((content, rest)),
        _ => None,
    }
}

pub const SEQUENCE: u8 = 0x30;
pub const INTEGER: u8 = 0x02;
pub const BIT_STRING: u8 = 0x03;
pub const OID: u8 = 0x06;
pub const NULL: u8 = 0x05;

/// An unsigned big-endian INTEGER without its sign-padding zeros.
pub fn unsigned_integer(content: &[u8]) -> Option<&[u8]> {
    if content.is_empty() || content[0] & 0x80 != 0 {
        return None; // empty or negative
    }
    let start = content
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(content.len());
    Some(&content[start..])
}

/// DER `SEQUENCE { INTEGER r, INTEGER s }` to JOSE `r||s`, each left-padded to `size` bytes.
pub fn ecdsa_der_to_jose(der: &[u8], size: usize) -> Option<Vec<u8>> {
    let (seq, trailing) = expect(der, SEQUENCE)?;
    if !trailing.is_empty() {
        return None;
    }
    let (r, rest) = expect(seq, INTEGER)?;
    let (s, rest) = expect(rest, INTEGER)?;
    if !rest.is_empty() {
        return None;
    }
    let (r, s) = (unsigned_integer(r)?, unsigned_integer(s)?);
    if r.len() > size || s.len() > size || r.is_empty() || s.is_empty() {
        return None;
    }
    let mut out = vec![0u8; 2 * size];
    out[size - r.len()..size].copy_from_slice(r);
    out[2 * size - s.len()..].copy_from_slice(s);
    Some(out)
}

/// A parsed SubjectPublicKeyInfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKeyInfo {
    /// An EC key: the curve's coordinate size and the uncompressed point's x and y.
    Ec {
        curve: Curve,
        x: Vec<u8>,
        y: Vec<u8>,
    },
    /// An RSA key: modulus and exponent, without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
    P521,
}

impl Curve {
    pub fn coordinate_size(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }
    pub fn jwk_name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
            Curve::P521 => "P-521",
        }
    }
}

const OID_EC_PUBLIC_KEY: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x22];
const OID_P521: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x23];
const OID_RSA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];

/// Parses SPKI DER for the key kinds the protocol knows (P-256, P-384, P-521, RSA).
pub fn parse_spki(der: &[u8]) -> Option<PublicKeyInfo> {
    let (spki, trailing) = expect(der, SEQUENCE)?;
    if !trailing.is_empty() {
        return None;
    }
    let (alg, rest) = expect(spki, SEQUENCE)?;
    let (bits, rest) = expect(rest, BIT_STRING)?;
    if !rest.is_empty() {
        return None;
    }
    let (&unused, key) = bits.split_first()?;
    if unused != 0 {
        return None;
    }
    let (alg_oid, params) = expect(alg, OID)?;
    if alg_oid == OID_EC_PUBLIC_KEY {
        let (curve_oid, _) = expect(params, OID)?;
        let curve = match curve_oid {
            c if c == OID_P256 => Curve::P256,
            c if c == OID_P384 => Curve::P384,
            c if c == OID_P521 => Curve::P521,
            _ => return None,
        };
        let size = curve.coordinate_size();
        let (&form, xy) = key.split_first()?;
        if form != 0x04 || xy.len() != 2 * size {
            return None; // only the uncompressed form
        }
        Some(PublicKeyInfo::Ec {
            curve,
            x: xy[..size].to_vec(),
            y: xy[size..].to_vec(),
        })
    } else if alg_oid == OID_RSA {
        let (rsa, trailing) = expect(key, SEQUENCE)?;
        if !trailing.is_empty() {
            return None;
        }
        let (n, rest) = expect(rsa, INTEGER)?;
        let (e, _) = expect(rest, INTEGER)?;
        let (n, e) = (unsigned_integer(n)?, unsigned_integer(e)?);
        if n.is_empty() || e.is_empty() {
            return None;
        }
        Some(PublicKeyInfo::Rsa {
            n: n.to_vec(),
            e: e.to_vec(),
        })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn converts_der_with_sign_padding_and_short_integers() {
        // r has a sign-padding zero (high bit set), s is short and must be left-padded.
        let mut der = vec![0x30, 0x00, 0x02, 0x21, 0x00];
        der.extend([0x80u8; 32]);
        der.extend([0x02, 0x02, 0x01, 0x02]);
        der[1] = (der.len() - 2) as u8;
        let Some(jose) = ecdsa_der_to_jose(&der, 32) else {
            panic!("a valid signature must convert");
        };
        assert_eq!(jose.len(), 64);
        assert_eq!(&jose[..32], &[0x80u8; 32]);
        assert_eq!(&jose[32..62], &[0u8; 30]);
        assert_eq!(&jose[62..], &[0x01, 0x02]);
    }

    #[test]
    fn rejects_oversized_negative_and_trailing() {
        let mut der = vec![0x30, 0x00, 0x02, 0x21, 0x01];
        der.extend([0x00u8; 32]);
        der.extend([0x02, 0x01, 0x01]);
        der[1] = (der.len() - 2) as u8;
        assert_eq!(ecdsa_der_to_jose(&der, 32), None, "r longer than the curve");
        assert_eq!(
            ecdsa_der_to_jose(&[0x30, 0x06, 0x02, 0x01, 0x81, 0x02, 0x01, 0x01], 32),
            None,
            "negative r"
        );
        assert_eq!(
            ecdsa_der_to_jose(&[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01, 0x00], 32),
            None,
            "trailing byte"
        );
        assert_eq!(
            ecdsa_der_to_jose(&[0x30, 0x81, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01], 32),
            None,
            "non-minimal length"
        );
    }

    proptest! {
        #[test]
        fn der_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = ecdsa_der_to_jose(&bytes, 32);
            let _ = ecdsa_der_to_jose(&bytes, 66);
            let _ = parse_spki(&bytes);
        }
    }
}
