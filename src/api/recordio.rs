//! Mesos RecordIO: each record is its length in bytes as a decimal number,
//! a newline, then the bytes (`5\nhello`). The executor and scheduler APIs
//! frame every streamed event this way.
//!
//! std only, so the blocking executors can use the [`Decoder`] too.

/// The largest record a [`Decoder`] accepts unless told otherwise: well
/// above any event an agent sends, small enough that a hostile length
/// cannot make a reader buffer without end.
pub const DEFAULT_MAX_RECORD: usize = 64 << 20;

/// Why a RecordIO stream could not be decoded. Once a decoder has failed
/// it cannot find the next record boundary, so every later feed fails too.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordIoError {
    #[error("invalid recordio length {header:?}: expected decimal digits before the newline")]
    InvalidLength { header: String },
    #[error("recordio length {header}... does not fit in 64 bits")]
    Overflow { header: String },
    #[error("recordio record of {length} bytes exceeds the limit of {max} bytes")]
    TooLarge { length: u64, max: usize },
    #[error("recordio stream already failed: {0}")]
    Failed(Box<RecordIoError>),
    #[error("recordio stream ends inside a record ({have} of {want} bytes)")]
    Truncated { have: usize, want: u64 },
    #[error("recordio stream ends inside a length header {header:?}")]
    TruncatedHeader { header: String },
}

/// Frames one record: its decimal length, `\n`, then the bytes.
pub fn encode(record: &[u8]) -> Vec<u8> {
    let header = format!("{}\n", record.len());
    let mut out = Vec::with_capacity(header.len() + record.len());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(record);
    out
}

/// Longest header kept for an error message.
const MAX_HEADER_SHOWN: usize = 32;

#[derive(Debug)]
enum State {
    /// Reading the digits of a length; `digits` counts them.
    Header {
        length: u64,
        digits: usize,
    },
    /// Reading a record of `length` bytes into `record`.
    Record {
        length: usize,
    },
    Failed(RecordIoError),
}

/// An incremental decoder: feed it bytes as they arrive, in pieces of any
/// size, and it returns every record completed so far. A record of length
/// 0 decodes as an empty record, as Mesos' decoder does.
#[derive(Debug)]
pub struct Decoder {
    state: State,
    /// Header bytes seen so far (only for error messages, capped).
    header: Vec<u8>,
    record: Vec<u8>,
    max_record: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(DEFAULT_MAX_RECORD)
    }
}

impl Decoder {
    /// A decoder that rejects any record longer than `max_record` bytes.
    pub fn new(max_record: usize) -> Self {
        Decoder {
            state: State::Header {
                length: 0,
                digits: 0,
            },
            header: Vec::new(),
            record: Vec::new(),
            max_record,
        }
    }

    /// Decodes `data`, returning the records it completes (possibly none).
    /// Bytes of an unfinished record are kept for the next call.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<Vec<Vec<u8>>, RecordIoError> {
        let mut records = Vec::new();
        while !data.is_empty() {
            match self.state {
                State::Failed(ref e) => return Err(RecordIoError::Failed(Box::new(e.clone()))),
                State::Header { length, digits } => {
                    let c = data[0];
                    data = &data[1..];
                    match self.header_byte(c, length, digits) {
                        Ok(next) => self.state = next,
                        Err(e) => {
                            self.state = State::Failed(e.clone());
                            return Err(e);
                        }
                    }
                    if let State::Record { length: 0 } = self.state {
                        records.push(Vec::new());
                        self.reset_header();
                    }
                }
                State::Record { length } => {
                    let take = (length - self.record.len()).min(data.len());
                    self.record.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if self.record.len() == length {
                        records.push(std::mem::take(&mut self.record));
                        self.reset_header();
                    }
                }
            }
        }
        if let State::Failed(ref e) = self.state {
            return Err(RecordIoError::Failed(Box::new(e.clone())));
        }
        Ok(records)
    }

    /// Whether the decoder sits between records: true at a clean end of
    /// stream.
    pub fn is_between_records(&self) -> bool {
        matches!(self.state, State::Header { digits: 0, .. })
    }

    /// Checks the end of the stream: fails if it stopped inside a header or
    /// a record (or the decoder had failed before).
    pub fn finish(&self) -> Result<(), RecordIoError> {
        match self.state {
            State::Header { digits: 0, .. } => Ok(()),
            State::Header { .. } => Err(RecordIoError::TruncatedHeader {
                header: self.header_text(),
            }),
            State::Record { length } => Err(RecordIoError::Truncated {
                have: self.record.len(),
                want: length as u64,
            }),
            State::Failed(ref e) => Err(RecordIoError::Failed(Box::new(e.clone()))),
        }
    }

    fn header_byte(&mut self, c: u8, length: u64, digits: usize) -> Result<State, RecordIoError> {
        if c == b'\n' {
            if digits == 0 {
                return Err(RecordIoError::InvalidLength {
                    header: String::new(),
                });
            }
            // Checked against `max_record` digit by digit, so this fits.
            let length = length as usize;
            self.record = Vec::with_capacity(length.min(64 << 10));
            return Ok(State::Record { length });
        }
        if self.header.len() < MAX_HEADER_SHOWN {
            self.header.push(c);
        }
        if !c.is_ascii_digit() {
            return Err(RecordIoError::InvalidLength {
                header: self.header_text(),
            });
        }
        let length = length
            .checked_mul(10)
            .and_then(|l| l.checked_add(u64::from(c - b'0')))
            .ok_or_else(|| RecordIoError::Overflow {
                header: self.header_text(),
            })?;
        if length > self.max_record as u64 {
            return Err(RecordIoError::TooLarge {
                length,
                max: self.max_record,
            });
        }
        Ok(State::Header {
            length,
            digits: digits + 1,
        })
    }

    fn reset_header(&mut self) {
        self.header.clear();
        self.state = State::Header {
            length: 0,
            digits: 0,
        };
    }

    fn header_text(&self) -> String {
        String::from_utf8_lossy(&self.header).into_owned()
    }
}

/// The fuzz entry (see `fuzz/`): the first byte picks a piece size, the
/// second a record limit, the rest is a stream. Feeding the stream in
/// pieces gives what feeding it whole gives, the records re-encoded decode
/// to themselves, and a decoder that is between records finishes cleanly.
/// Panics when an invariant breaks.
#[doc(hidden)]
pub fn fuzz(data: &[u8]) {
    let [piece, limit, stream @ ..] = data else {
        return;
    };
    let piece = usize::from(*piece).max(1);
    let max = 1usize << (limit % 24);
    let whole = Decoder::new(max).feed(stream);
    let mut d = Decoder::new(max);
    let mut records = Vec::new();
    let mut failed = None;
    for chunk in stream.chunks(piece) {
        match d.feed(chunk) {
            Ok(r) => records.extend(r),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    match (&whole, &failed) {
        (Ok(all), None) => {
            assert_eq!(all, &records);
            assert_eq!(d.is_between_records(), d.finish().is_ok());
            assert!(records.iter().all(|r| r.len() <= max));
            let again: Vec<u8> = records.iter().flat_map(|r| encode(r)).collect();
            let mut fresh = Decoder::new(max);
            assert_eq!(fresh.feed(&again).as_ref(), Ok(&records));
            assert!(fresh.finish().is_ok());
        }
        (Err(e), Some(f)) => {
            assert_eq!(e, f);
            assert!(d.finish().is_err());
            assert!(matches!(d.feed(b"0\n"), Err(RecordIoError::Failed(_))));
        }
        _ => panic!("whole: {whole:?}, in pieces of {piece}: {failed:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_length_newline_bytes() {
        assert_eq!(encode(b"hello"), b"5\nhello");
        assert_eq!(encode(b""), b"0\n");
        assert_eq!(encode(&[7u8; 12])[..3], *b"12\n");
    }

    #[test]
    fn decodes_fixture_bytes() {
        let mut d = Decoder::default();
        let got = d.feed(b"5\nhello6\nworld!").unwrap();
        assert_eq!(got, vec![b"hello".to_vec(), b"world!".to_vec()]);
        assert!(d.finish().is_ok());
    }

    #[test]
    fn round_trips_many_records() {
        let records: Vec<Vec<u8>> = (0..50).map(|i| vec![i as u8; i * 37]).collect();
        let stream: Vec<u8> = records.iter().flat_map(|r| encode(r)).collect();
        let mut d = Decoder::default();
        assert_eq!(d.feed(&stream).unwrap(), records);
    }

    #[test]
    fn split_feeds_give_the_same_records() {
        let stream = [
            encode(b"{\"type\":\"SUBSCRIBED\"}"),
            encode(b""),
            encode(b"x"),
        ]
        .concat();
        for chunk in 1..stream.len() {
            let mut d = Decoder::default();
            let mut got = Vec::new();
            for piece in stream.chunks(chunk) {
                got.extend(d.feed(piece).unwrap());
            }
            assert_eq!(
                got,
                vec![b"{\"type\":\"SUBSCRIBED\"}".to_vec(), vec![], b"x".to_vec()],
                "chunk size {chunk}"
            );
            assert!(d.is_between_records());
        }
    }

    #[test]
    fn partial_record_waits_for_more() {
        let mut d = Decoder::default();
        assert!(d.feed(b"5\nhel").unwrap().is_empty());
        assert!(!d.is_between_records());
        assert_eq!(
            d.finish(),
            Err(RecordIoError::Truncated { have: 3, want: 5 })
        );
        assert_eq!(d.feed(b"lo").unwrap(), vec![b"hello".to_vec()]);
        assert!(d.feed(b"1").unwrap().is_empty());
        assert!(matches!(
            d.finish(),
            Err(RecordIoError::TruncatedHeader { .. })
        ));
    }

    #[test]
    fn rejects_oversized_length_before_reading_the_record() {
        let mut d = Decoder::new(10);
        assert_eq!(d.feed(b"10\n0123456789").unwrap().len(), 1);
        let err = d.feed(b"11").unwrap_err();
        assert_eq!(
            err,
            RecordIoError::TooLarge {
                length: 11,
                max: 10
            }
        );
        assert!(err.to_string().contains("exceeds the limit of 10 bytes"));
        // Failed for good: the next record boundary is unknown.
        assert!(matches!(d.feed(b"\nx"), Err(RecordIoError::Failed(_))));
    }

    #[test]
    fn rejects_non_digit_length() {
        let mut d = Decoder::default();
        let err = d.feed(b"5x\nhello").unwrap_err();
        assert_eq!(
            err,
            RecordIoError::InvalidLength {
                header: "5x".into()
            }
        );
        assert!(Decoder::default().feed(b"\nhello").is_err());
        assert!(Decoder::default().feed(b"-1\n").is_err());
        assert!(Decoder::default().feed(b" 5\nhello").is_err());
    }

    #[test]
    fn rejects_overflowing_length() {
        let mut d = Decoder::new(usize::MAX);
        let err = d.feed(b"99999999999999999999999\n").unwrap_err();
        assert!(matches!(err, RecordIoError::Overflow { .. }), "{err}");
    }

    #[test]
    fn zero_length_record_is_empty() {
        let mut d = Decoder::default();
        assert_eq!(d.feed(b"0\n0\n").unwrap(), vec![Vec::<u8>::new(), vec![]]);
    }
}
