//! The binary form of one minute's aggregates, as replicas share them through PostgreSQL
//! (`kpi_minutes`, `kpi_partials`): little-endian, versioned, and decoded with bounds (a
//! row is read back by every replica, so a damaged one must cost little and fail cleanly).
//!
//! ```text
//! minute   = u8 version(1), agg all, u32 n, n × (u16 len, name bytes, agg)
//! agg      = u64 count, f64 sum_ms, u64 server_errors, u64 client_errors, sketch
//! sketch   = u64 zero, f64 min, f64 max, u32 n, [i32 first bin, n × (varint gap, varint count)]
//! ```
//!
//! Bins go lowest first, each as its distance from the one before (0 for the first) and its
//! count, both LEB128 varints: a busy minute's bins are consecutive with small counts, so
//! about two bytes a bin instead of eight (a day of minutes is read at every start).

use super::sketch::{MAX_BINS, Sketch};
use super::{Agg, Minute};

const VERSION: u8 = 1;
/// Endpoints in one row: the per-minute limit plus `other`, with room to spare.
const MAX_ENDPOINTS: usize = 4096;
/// Bytes of an endpoint name (256 characters of up to 4 bytes).
const MAX_NAME: usize = 1024;

pub fn encode(minute: &Minute) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + minute.by_endpoint.len() * 64);
    out.push(VERSION);
    put_agg(&mut out, &minute.all);
    out.extend((minute.by_endpoint.len() as u32).to_le_bytes());
    for (name, agg) in &minute.by_endpoint {
        let name = &name.as_bytes()[..name.len().min(MAX_NAME)];
        out.extend((name.len() as u16).to_le_bytes());
        out.extend(name);
        put_agg(&mut out, agg);
    }
    out
}

fn put_agg(out: &mut Vec<u8>, agg: &Agg) {
    out.extend(agg.count.to_le_bytes());
    out.extend(agg.sum_ms.to_le_bytes());
    out.extend(agg.server_errors.to_le_bytes());
    out.extend(agg.client_errors.to_le_bytes());
    let ((zero, min, max), bins) = agg.sketch.parts();
    out.extend(zero.to_le_bytes());
    out.extend(min.to_le_bytes());
    out.extend(max.to_le_bytes());
    out.extend((agg.sketch.bins_in_use() as u32).to_le_bytes());
    let mut previous = None;
    for (index, n) in bins {
        match previous {
            None => out.extend(index.to_le_bytes()),
            Some(p) => put_varint(out, (index - p) as u32),
        }
        put_varint(out, n);
        previous = Some(index);
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

const FRAME_MAGIC: &[u8; 4] = b"VCKM";
/// Minutes in one frame: the longest window and the minute being filled.
pub const MAX_FRAME_MINUTES: usize = super::Window::LONGEST_MINUTES as usize + 1;
/// Bytes of one encoded minute: 4 096 endpoints of 2 048 bins is far past any real minute.
const MAX_MINUTE_BYTES: usize = 16 << 20;

pub fn encode_frame<'a>(minutes: impl Iterator<Item = (i64, &'a Minute)>) -> Vec<u8> {
    let mut out = FRAME_MAGIC.to_vec();
    out.push(VERSION);
    let count_at = out.len();
    out.extend(0u32.to_le_bytes());
    let mut n = 0u32;
    for (at, minute) in minutes {
        let bytes = encode(minute);
        out.extend(at.to_le_bytes());
        out.extend((bytes.len() as u32).to_le_bytes());
        out.extend(bytes);
        n += 1;
    }
    out[count_at..count_at + 4].copy_from_slice(&n.to_le_bytes());
    out
}

/// A frame's minutes, oldest first; refused whole if any part is damaged, repeated or out
/// of order (it comes from another region, over the network).
pub fn decode_frame(bytes: &[u8]) -> Result<Vec<(i64, Minute)>, String> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(4)? != FRAME_MAGIC {
        return Err("not a KPI frame (no VCKM magic)".into());
    }
    let version = r.take(1)?[0];
    if version != VERSION {
        return Err(format!("unknown KPI frame version {version}"));
    }
    let n = r.u32()? as usize;
    if n > MAX_FRAME_MINUTES {
        return Err(format!("{n} minutes in one frame (at most {MAX_FRAME_MINUTES})"));
    }
    let mut minutes: Vec<(i64, Minute)> = Vec::with_capacity(n);
    for _ in 0..n {
        let at = i64::from_le_bytes(r.array()?);
        if minutes.last().is_some_and(|(previous, _)| *previous >= at) {
            return Err(format!("minute {at} out of order"));
        }
        let len = r.u32()? as usize;
        if len > MAX_MINUTE_BYTES {
            return Err(format!("minute {at}: {len} bytes (at most {MAX_MINUTE_BYTES})"));
        }
        let minute = decode(r.take(len)?).map_err(|e| format!("minute {at}: {e}"))?;
        minutes.push((at, minute));
    }
    if r.at != bytes.len() {
        return Err(format!("{} bytes after the frame", bytes.len() - r.at));
    }
    Ok(minutes)
}

pub fn decode(bytes: &[u8]) -> Result<Minute, String> {
    let mut r = Reader { bytes, at: 0 };
    let version = r.take(1)?[0];
    if version != VERSION {
        return Err(format!("unknown KPI encoding version {version}"));
    }
    let all = get_agg(&mut r)?;
    let n = r.u32()? as usize;
    if n > MAX_ENDPOINTS {
        return Err(format!("{n} endpoints in one minute (at most {MAX_ENDPOINTS})"));
    }
    let mut minute = Minute { all, ..Minute::default() };
    for _ in 0..n {
        let len = u16::from_le_bytes(r.array()?) as usize;
        if len > MAX_NAME {
            return Err(format!("an endpoint name of {len} bytes"));
        }
        let name: Box<str> =
            std::str::from_utf8(r.take(len)?).map_err(|_| "an endpoint name that is not UTF-8".to_string())?.into();
        let agg = get_agg(&mut r)?;
        minute.by_endpoint.insert(name, agg);
    }
    if r.at != bytes.len() {
        return Err(format!("{} bytes after the end", bytes.len() - r.at));
    }
    Ok(minute)
}

fn get_agg(r: &mut Reader<'_>) -> Result<Agg, String> {
    let count = r.u64()?;
    let sum_ms = r.f64()?;
    let (server_errors, client_errors) = (r.u64()?, r.u64()?);
    let (zero, min, max) = (r.u64()?, r.f64()?, r.f64()?);
    let n = r.u32()? as usize;
    if n > MAX_BINS {
        return Err(format!("{n} bins in one sketch (at most {MAX_BINS})"));
    }
    let mut bins = Vec::with_capacity(n);
    let mut index = 0i32;
    for i in 0..n {
        index = if i == 0 {
            i32::from_le_bytes(r.array()?)
        } else {
            let gap = r.varint()?;
            // Strictly increasing and in range: what `from_parts` may take as sorted.
            index.checked_add_unsigned(gap).filter(|_| gap > 0).ok_or("bins out of order")?
        };
        bins.push((index, r.varint()?));
    }
    let sketch = Sketch::from_parts(zero, min, max, bins);
    Ok(Agg { count, sum_ms, server_errors, client_errors, sketch })
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.bytes.len()).ok_or("truncated")?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn varint(&mut self) -> Result<u32, String> {
        let mut v: u64 = 0;
        for shift in (0..35).step_by(7) {
            let b = self.take(1)?[0];
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return u32::try_from(v).map_err(|_| "a varint past 32 bits".to_string());
            }
        }
        Err("a varint longer than 5 bytes".into())
    }

    fn f64(&mut self) -> Result<f64, String> {
        Ok(f64::from_le_bytes(self.array()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minute() -> Minute {
        let mut m = Minute::default();
        for (i, ms) in [0.0, 0.5, 12.0, 12.1, 900.0, 3_600_000.0].into_iter().enumerate() {
            let status = [200, 404, 503][i % 3];
            m.all.record(ms, status);
            m.by_endpoint.entry(["/a", "/b"][i % 2].into()).or_default().record(ms, status);
        }
        m
    }

    #[test]
    fn a_minute_reads_back_as_written() {
        let m = minute();
        let back = decode(&encode(&m)).unwrap();
        assert_eq!(back.all.figures(1), m.all.figures(1));
        assert_eq!(back.by_endpoint.len(), 2);
        for (name, agg) in &m.by_endpoint {
            assert_eq!(back.by_endpoint[name].figures(1), agg.figures(1), "{name}");
        }
    }

    #[test]
    fn a_frame_reads_back_and_damaged_frames_are_refused() {
        let (a, b) = (minute(), minute());
        let frame = encode_frame([(10, &a), (12, &b)].into_iter());
        let back = decode_frame(&frame).unwrap();
        assert_eq!(back.iter().map(|(m, _)| *m).collect::<Vec<_>>(), [10, 12]);
        assert_eq!(back[1].1.all.figures(1), b.all.figures(1));
        assert!(decode_frame(&encode_frame(std::iter::empty())).unwrap().is_empty());
        for cut in [0, 3, 5, 9, frame.len() - 1] {
            assert!(decode_frame(&frame[..cut]).is_err(), "truncated at {cut}");
        }
        let backwards = encode_frame([(12, &a), (10, &b)].into_iter());
        assert!(decode_frame(&backwards).unwrap_err().contains("out of order"));
        let twice = encode_frame([(10, &a), (10, &b)].into_iter());
        assert!(decode_frame(&twice).unwrap_err().contains("out of order"));
        let mut huge = b"VCKM\x01".to_vec();
        huge.extend(u32::MAX.to_le_bytes());
        assert!(decode_frame(&huge).unwrap_err().contains("minutes in one frame"));
        assert!(decode_frame(b"GIF89a....").unwrap_err().contains("magic"));
    }

    #[test]
    fn damaged_rows_are_refused_not_trusted() {
        let bytes = encode(&minute());
        for cut in [0, 1, 10, bytes.len() - 1] {
            assert!(decode(&bytes[..cut]).is_err(), "truncated at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer).unwrap_err().contains("after the end"));
        let mut wrong = bytes.clone();
        wrong[0] = 9;
        assert!(decode(&wrong).unwrap_err().contains("version 9"));
        // A bin count of 4 billion: refused before anything is allocated for it.
        let mut huge = vec![VERSION];
        huge.extend([0u8; 8 * 7]);
        huge.extend(u32::MAX.to_le_bytes());
        assert!(decode(&huge).unwrap_err().contains("bins in one sketch"));
    }
}
