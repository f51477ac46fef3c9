//! A small WAV reader and writer: RIFF/WAVE with 16-bit PCM or 32-bit float samples
//! (format tags 1 and 3, or WAVE_FORMAT_EXTENSIBLE with those subformats), any number
//! of channels, interleaved. Anything else is refused with a message that says what the
//! file is and what is supported.

use crate::error::{fail, Context, Result};
use std::path::Path;

/// How samples are stored.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Sample {
    /// Signed 16-bit integers, read as `v / 32768`.
    Pcm16,
    /// IEEE 32-bit floats.
    Float32,
}

/// Decoded audio: `frames × channels` samples, interleaved.
#[derive(Clone, Debug, PartialEq)]
pub struct Wav {
    pub sample_rate: u32,
    pub channels: usize,
    pub format: Sample,
    pub samples: Vec<f32>,
}

/// Reads a WAV file.
pub fn read(path: &Path) -> Result<Wav> {
    let bytes = std::fs::read(path).context(|| format!("cannot read {}", path.display()))?;
    parse(&bytes).context(|| path.display().to_string())
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

/// Decodes the bytes of a WAV file.
pub fn parse(b: &[u8]) -> Result<Wav> {
    if b.len() < 12 || &b[0..4] != b"RIFF" || &b[8..12] != b"WAVE" {
        fail!("not a WAV file (no RIFF/WAVE header)");
    }
    let mut fmt: Option<(Sample, usize, u32, usize)> = None;
    let mut pos = 12;
    while pos + 8 <= b.len() {
        let id = &b[pos..pos + 4];
        let size = u32_at(b, pos + 4) as usize;
        let body = pos + 8;
        let end = body.checked_add(size).filter(|&e| e <= b.len());
        match id {
            b"fmt " => {
                let Some(end) = end else {
                    fail!("truncated fmt chunk");
                };
                if size < 16 {
                    fail!("fmt chunk of {size} bytes, expected at least 16");
                }
                let c = &b[body..end];
                let mut tag = u16_at(c, 0);
                let channels = u16_at(c, 2) as usize;
                let rate = u32_at(c, 4);
                let align = u16_at(c, 12) as usize;
                let bits = u16_at(c, 14);
                if tag == 0xFFFE {
                    if size < 40 {
                        fail!("WAVE_FORMAT_EXTENSIBLE fmt chunk of {size} bytes, expected 40");
                    }
                    tag = u16_at(c, 24); // first two bytes of the subformat GUID
                }
                let format = match (tag, bits) {
                    (1, 16) => Sample::Pcm16,
                    (3, 32) => Sample::Float32,
                    (1, n) => fail!("unsupported WAV format: {n}-bit PCM (supported: 16-bit PCM, 32-bit float)"),
                    (3, n) => fail!("unsupported WAV format: {n}-bit float (supported: 16-bit PCM, 32-bit float)"),
                    (6, _) => fail!("unsupported WAV format: A-law (supported: 16-bit PCM, 32-bit float)"),
                    (7, _) => fail!("unsupported WAV format: mu-law (supported: 16-bit PCM, 32-bit float)"),
                    (t, _) => fail!("unsupported WAV format tag {t:#06x} (supported: 16-bit PCM, 32-bit float)"),
                };
                if channels == 0 {
                    fail!("the fmt chunk says 0 channels");
                }
                let width = bits as usize / 8;
                if align != channels * width {
                    fail!("block align {align} does not match {channels} channels of {bits} bits");
                }
                fmt = Some((format, channels, rate, width));
            }
            b"data" => {
                let Some((format, channels, sample_rate, width)) = fmt else {
                    fail!("the data chunk comes before the fmt chunk");
                };
                let Some(end) = end else {
                    fail!(
                        "the data chunk says {size} bytes but only {} follow (truncated file?)",
                        b.len() - body
                    );
                };
                let data = &b[body..end];
                if !data.len().is_multiple_of(channels * width) {
                    fail!(
                        "the data chunk holds {} bytes, not a whole number of {channels}-channel frames",
                        data.len()
                    );
                }
                let samples = match format {
                    Sample::Pcm16 => data
                        .chunks_exact(2)
                        .map(|s| i16::from_le_bytes([s[0], s[1]]) as f32 / 32768.0)
                        .collect(),
                    Sample::Float32 => data
                        .chunks_exact(4)
                        .map(|s| f32::from_le_bytes([s[0], s[1], s[2], s[3]]))
                        .collect(),
                };
                return Ok(Wav {
                    sample_rate,
                    channels,
                    format,
                    samples,
                });
            }
            _ => {}
        }
        let Some(end) = end else {
            fail!("truncated chunk {:?}", String::from_utf8_lossy(id));
        };
        pos = end + (size & 1); // chunks are padded to an even size
    }
    if fmt.is_none() {
        fail!("no fmt chunk");
    }
    fail!("no data chunk")
}

/// Encodes `wav` (16-bit samples are clipped to [-1, 1] and rounded).
pub fn encode(wav: &Wav) -> Result<Vec<u8>> {
    let (tag, width) = match wav.format {
        Sample::Pcm16 => (1u16, 2usize),
        Sample::Float32 => (3u16, 4usize),
    };
    let ch = wav.channels;
    if ch == 0 || ch > u16::MAX as usize || !wav.samples.len().is_multiple_of(ch) {
        fail!(
            "cannot write a WAV of {} samples in {ch} channels",
            wav.samples.len()
        );
    }
    let data_len = wav.samples.len() * width;
    // Float files carry the 18-byte fmt (cbSize = 0) and a fact chunk, as the spec asks.
    let float = wav.format == Sample::Float32;
    let fmt_len = if float { 18 } else { 16 };
    let total = 4 + (8 + fmt_len) + if float { 12 } else { 0 } + 8 + data_len;
    if total > u32::MAX as usize {
        fail!(
            "{} samples are too many for a WAV file (4 GiB limit)",
            wav.samples.len()
        );
    }
    let mut out = Vec::with_capacity(8 + total);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(total as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&(fmt_len as u32).to_le_bytes());
    out.extend_from_slice(&tag.to_le_bytes());
    out.extend_from_slice(&(ch as u16).to_le_bytes());
    out.extend_from_slice(&wav.sample_rate.to_le_bytes());
    out.extend_from_slice(&(wav.sample_rate * (ch * width) as u32).to_le_bytes());
    out.extend_from_slice(&((ch * width) as u16).to_le_bytes());
    out.extend_from_slice(&((width * 8) as u16).to_le_bytes());
    if float {
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(b"fact");
        out.extend_from_slice(&4u32.to_le_bytes());
        out.extend_from_slice(&((wav.samples.len() / ch) as u32).to_le_bytes());
    }
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data_len as u32).to_le_bytes());
    for &s in &wav.samples {
        match wav.format {
            Sample::Pcm16 => {
                let v = (s.clamp(-1.0, 1.0) * 32767.0).round() as i16;
                out.extend_from_slice(&v.to_le_bytes());
            }
            Sample::Float32 => out.extend_from_slice(&s.to_le_bytes()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_what_it_cannot_read() {
        let w = Wav {
            sample_rate: 44100,
            channels: 2,
            format: Sample::Float32,
            samples: vec![0.5, -0.25, 1.5, 0.0],
        };
        assert_eq!(parse(&encode(&w).unwrap()).unwrap(), w);
        let p = Wav {
            format: Sample::Pcm16,
            samples: vec![0.5, -0.25, 1.0, -1.0],
            ..w.clone()
        };
        let back = parse(&encode(&p).unwrap()).unwrap();
        assert_eq!(
            back.samples,
            vec![
                16384.0 / 32768.0,
                -8192.0 / 32768.0,
                32767.0 / 32768.0,
                -32767.0 / 32768.0
            ]
        );
        // 24-bit PCM: tag 1, 24 bits.
        let mut b = encode(&p).unwrap();
        b[34] = 24;
        b[32] = 6;
        assert!(parse(&b).unwrap_err().0.contains("24-bit PCM"));
        // Truncated data.
        let b = encode(&w).unwrap();
        assert!(parse(&b[..b.len() - 3])
            .unwrap_err()
            .0
            .contains("truncated"));
        assert!(parse(b"hello").unwrap_err().0.contains("not a WAV"));
    }
}
