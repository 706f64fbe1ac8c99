//! Turning a parsed X.509 name back into an rcgen [`DistinguishedName`],
//! keeping each attribute's string type: certificates issued by a loaded
//! CA must name it with exactly the bytes of its subject, or chain
//! building (which compares names byte for byte) fails.

use rcgen::{BmpString, DistinguishedName, DnType, DnValue, UniversalString};
use x509_parser::der_parser::asn1_rs::Tag;
use x509_parser::x509::X509Name;

/// The rcgen form of `name`. rcgen supports one attribute per RDN and one
/// value per attribute type; other names are refused here or caught by the
/// caller's byte comparison.
pub(super) fn from_x509(name: &X509Name<'_>) -> Result<DistinguishedName, String> {
    let mut dn = DistinguishedName::new();
    for rdn in name.iter() {
        let mut attrs = rdn.iter();
        let (Some(attr), None) = (attrs.next(), attrs.next()) else {
            return Err("its subject has a multi-valued RDN, which zdb cannot reproduce".into());
        };
        let oid: Vec<u64> = attr
            .attr_type()
            .iter()
            .ok_or("its subject has an attribute type too large to read")?
            .collect();
        let value = attr.attr_value();
        let text = || std::str::from_utf8(value.data).map_err(|_| "its subject is not text");
        let bad = |err: rcgen::Error| format!("its subject cannot be re-encoded ({err})");
        let value = match value.tag() {
            Tag::Utf8String => DnValue::Utf8String(text()?.to_owned()),
            Tag::PrintableString => DnValue::PrintableString(text()?.try_into().map_err(bad)?),
            Tag::Ia5String => DnValue::Ia5String(text()?.try_into().map_err(bad)?),
            Tag::T61String => DnValue::TeletexString(text()?.try_into().map_err(bad)?),
            Tag::BmpString => {
                DnValue::BmpString(BmpString::from_utf16be(value.data.to_vec()).map_err(bad)?)
            }
            Tag::UniversalString => DnValue::UniversalString(
                UniversalString::from_utf32be(value.data.to_vec()).map_err(bad)?,
            ),
            other => return Err(format!("its subject has a value of type {other:?}")),
        };
        dn.push(DnType::from_oid(&oid), value);
    }
    Ok(dn)
}
