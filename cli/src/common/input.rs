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
    let bytes = read_bounded(path, MAX_INPUT_BYTES)?;
    String::from_utf8(bytes).with_context(|| format!("cannot read {}: not UTF-8", path.display()))
}

/// Reads a file of at most `max` bytes.
pub fn read_bounded(path: &Path, max: u64) -> anyhow::Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    anyhow::ensure!(
        len <= max,
        "{} is {len} bytes, more than {max}",
        path.display()
    );
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}
