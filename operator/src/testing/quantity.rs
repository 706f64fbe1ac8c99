//! Kubernetes quantities as the API server parses them
//! (`k8s.io/apimachinery/pkg/api/resource.ParseQuantity`): a signed decimal
//! number and one suffix, binary (`Ki` .. `Ei`), decimal (`n` .. `E`) or an
//! exponent (`e3`, `E-2`). Anything else is refused, with the server's text.
//!
//! Shared by the fake API server and the CRD tests (`#[path]` include), so
//! it uses nothing but std.

/// What the API server answers for a string that is not a quantity.
pub const SYNTAX_ERROR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// The value of `text`, approximately (enough to compare and to tell the
/// sign), or the API server's error.
pub fn parse(text: &str) -> Result<f64, String> {
    let (sign, rest) = match text.as_bytes().first() {
        Some(b'+') => (1.0, &text[1..]),
        Some(b'-') => (-1.0, &text[1..]),
        _ => (1.0, text),
    };
    let number_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_end);
    let digits = number.chars().filter(char::is_ascii_digit).count();
    if digits == 0 || number.matches('.').count() > 1 {
        return Err(SYNTAX_ERROR.into());
    }
    let value: f64 = number.parse().map_err(|_| SYNTAX_ERROR.to_owned())?;
    Ok(sign * value * multiplier(suffix).ok_or_else(|| SYNTAX_ERROR.to_owned())?)
}

fn multiplier(suffix: &str) -> Option<f64> {
    let binary = |power: i32| Some(2f64.powi(power));
    let decimal = |power: i32| Some(10f64.powi(power));
    match suffix {
        "" => decimal(0),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        exponent => {
            let power = exponent.strip_prefix(['e', 'E'])?;
            let digits = power.strip_prefix(['+', '-']).unwrap_or(power);
            if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            decimal(power.parse().ok()?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn parses_what_the_api_server_parses() {
        for (text, value) in [
            ("10Gi", 10.0 * 1024.0 * 1024.0 * 1024.0),
            ("500m", 0.5),
            ("2", 2.0),
            (".5", 0.5),
            ("1.", 1.0),
            ("1e3", 1000.0),
            ("1E", 1e18),
            ("-1Gi", -(1024.0f64.powi(3))),
            ("+3k", 3000.0),
            ("0", 0.0),
        ] {
            assert_eq!(parse(text), Ok(value), "{text}");
        }
    }

    #[test]
    fn refuses_what_the_api_server_refuses() {
        for text in [
            "", "lots", "1.2.3", "Gi", "1gi", "1e", "1 Gi", "1Gib", "--1", ".",
        ] {
            assert!(parse(text).is_err(), "{text:?} parsed");
        }
    }
}
