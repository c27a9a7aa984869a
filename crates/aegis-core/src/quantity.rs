//! Kubernetes resource quantities (`500m`, `256Mi`, `1.5Gi`, `2`) as plain numbers.

/// Parses a CPU quantity into millicores. Returns `None` for text that is not a quantity.
pub fn cpu_millis(quantity: &str) -> Option<u64> {
    let value = parse(quantity)?;
    let millis = value * 1000.0;
    (millis.is_finite() && millis >= 0.0).then(|| millis.ceil() as u64)
}

/// Parses a memory (or storage) quantity into bytes. Returns `None` for text that is not a quantity.
pub fn bytes(quantity: &str) -> Option<u64> {
    let value = parse(quantity)?;
    (value.is_finite() && value >= 0.0).then(|| value.ceil() as u64)
}

/// Formats bytes the way people write memory limits: whole `Gi` when exact, else `Mi` rounded up.
pub fn format_bytes(bytes: u64) -> String {
    const MI: u64 = 1024 * 1024;
    const GI: u64 = 1024 * MI;
    if bytes >= GI && bytes.is_multiple_of(GI) {
        format!("{}Gi", bytes / GI)
    } else {
        format!("{}Mi", bytes.div_ceil(MI))
    }
}

/// Formats millicores as Kubernetes writes them: whole cores when exact, else `m`.
pub fn format_cpu_millis(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        format!("{}", millis / 1000)
    } else {
        format!("{millis}m")
    }
}

fn parse(quantity: &str) -> Option<f64> {
    let quantity = quantity.trim();
    let split = quantity
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(quantity.len());
    let (number, suffix) = quantity.split_at(split);
    let number: f64 = number.parse().ok()?;
    let multiplier = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "Pi" => 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => {
            let exponent: i32 = suffix.strip_prefix(['e', 'E'])?.parse().ok()?;
            10f64.powi(exponent)
        }
    };
    Some(number * multiplier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse_as_kubernetes_reads_them() {
        let memory = [
            ("128Mi", Some(134_217_728)),
            ("1Gi", Some(1_073_741_824)),
            ("1.5Gi", Some(1_610_612_736)),
            ("500M", Some(500_000_000)),
            ("1e3", Some(1000)),
            ("12", Some(12)),
            ("lots", None),
            ("12Qi", None),
        ];
        for (input, expected) in memory {
            assert_eq!(bytes(input), expected, "{input}");
        }
        let cpu = [("500m", Some(500)), ("2", Some(2000)), ("0.25", Some(250))];
        for (input, expected) in cpu {
            assert_eq!(cpu_millis(input), expected, "{input}");
        }
    }

    #[test]
    fn formatting_rounds_up_to_whole_units() {
        assert_eq!(format_bytes(256 * 1024 * 1024), "256Mi");
        assert_eq!(format_bytes(2 * 1024 * 1024 * 1024), "2Gi");
        assert_eq!(format_bytes(1_000_000), "1Mi");
        assert_eq!(format_cpu_millis(1500), "1500m");
        assert_eq!(format_cpu_millis(2000), "2");
    }
}
