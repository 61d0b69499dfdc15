//! Reading documents given on the command line: inline, from a file, or `-` for stdin.

use std::io::Read;
use std::path::Path;

use anyhow::Context;

/// Longest document read from a file or stdin (the largest wire document is an envelope).
const MAX_INPUT_BYTES: u64 = 1024 * 1024;

/// Returns `arg` itself when it looks like a compact JWS, else reads the file it names (or
/// stdin for `-`). Surrounding whitespace is trimmed.
pub fn jws_arg(arg: &str) -> anyhow::Result<String> {
    if arg == "-" {
        let mut text = String::new();
        std::io::stdin()
            .take(MAX_INPUT_BYTES)
            .read_to_string(&mut text)
            .context("reading standard input")?;
        return Ok(text.trim().to_owned());
    }
    if arg.matches('.').count() == 2 && !Path::new(arg).exists() {
        return Ok(arg.trim().to_owned());
    }
    read_file(Path::new(arg)).map(|t| t.trim().to_owned())
}

/// Reads a text file of at most 1 MiB.
pub fn read_file(path: &Path) -> anyhow::Result<String> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    anyhow::ensure!(
        len <= MAX_INPUT_BYTES,
        "{} is {len} bytes, more than {MAX_INPUT_BYTES}",
        path.display()
    );
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}
