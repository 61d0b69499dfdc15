//! How numbers are written in the report, the assumptions and the error messages.

/// Inserts thousands separators into the integer part of a decimal number.
pub(crate) fn group_digits(text: &str) -> String {
    let (sign, rest) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", text),
    };
    let (int, frac) = match rest.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (rest, None),
    };
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match frac {
        Some(frac) => format!("{sign}{grouped}.{frac}"),
        None => format!("{sign}{grouped}"),
    }
}

/// A number with about five significant digits, thousands grouped, no trailing zeros.
pub(crate) fn num(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    if x.abs() >= 1000.0 || x == x.trunc() {
        return group_digits(&format!("{x:.0}"));
    }
    let magnitude = x.abs().log10().floor();
    let decimals = (4.0 - magnitude).clamp(0.0, 9.0) as usize;
    let text = format!("{x:.decimals$}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    group_digits(text)
}

/// US dollars with cents, thousands grouped.
pub(crate) fn usd(x: f64) -> String {
    group_digits(&format!("{x:.2}"))
}

/// A ratio as `12.3x`, or `-` when undefined.
pub(crate) fn times(ratio: Option<f64>) -> String {
    ratio.map_or_else(
        || "-".to_owned(),
        |r| {
            if r < 10.0 {
                format!("{r:.2}x")
            } else {
                format!("{r:.1}x")
            }
        },
    )
}

/// `text` with its first letter in upper case.
pub(crate) fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// The command-line flag of an input.
pub(crate) fn flag_of(name: &str) -> String {
    format!("--{}", name.replace('_', "-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_readably() {
        assert_eq!(num(1_234_567.0), "1,234,567");
        assert_eq!(num(0.004445), "0.004445");
        assert_eq!(num(1.001), "1.001");
        assert_eq!(num(0.35), "0.35");
        assert_eq!(usd(12_345.678), "12,345.68");
        assert_eq!(group_digits("-1234567.5"), "-1,234,567.5");
        assert_eq!(times(None), "-");
        assert_eq!(times(Some(12.345)), "12.3x");
        assert_eq!(flag_of("peak_votes_per_sec"), "--peak-votes-per-sec");
    }
}
