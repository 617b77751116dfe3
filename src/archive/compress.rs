//! Stream decompression, chosen by name or by magic bytes.

use std::io::{self, BufRead, Read};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
    Bzip2,
    Xz,
}

impl Compression {
    /// Recognises a compressed stream by its first bytes.
    pub fn from_magic(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else if head.starts_with(b"BZh") {
            Compression::Bzip2
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Compression::Xz
        } else {
            Compression::None
        }
    }

    /// Peeks at a buffered stream without consuming it.
    pub fn sniff<R: BufRead>(reader: &mut R) -> io::Result<Compression> {
        Ok(Compression::from_magic(reader.fill_buf()?))
    }
}

/// Wraps `reader` in the decoder for `compression`. Multi-member gzip (as
/// pigz writes) and multi-stream bzip2/xz are read to the end.
pub fn decompress<'a, R: Read + 'a>(
    reader: R,
    compression: Compression,
) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(reader)?),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(reader)),
        Compression::Xz => Box::new(xz2::read::XzDecoder::new_multi_decoder(reader)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn every_format_round_trips_and_is_recognised() {
        let data = b"hello, layers".repeat(100);
        let gz = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&data).unwrap();
            e.finish().unwrap()
        };
        let zst = zstd::encode_all(&data[..], 1).unwrap();
        let bz = {
            let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
            e.write_all(&data).unwrap();
            e.finish().unwrap()
        };
        let xz = {
            let mut e = xz2::write::XzEncoder::new(Vec::new(), 1);
            e.write_all(&data).unwrap();
            e.finish().unwrap()
        };
        for (bytes, want) in [
            (&gz, Compression::Gzip),
            (&zst, Compression::Zstd),
            (&bz, Compression::Bzip2),
            (&xz, Compression::Xz),
            (&data, Compression::None),
        ] {
            let mut r = io::BufReader::new(&bytes[..]);
            assert_eq!(Compression::sniff(&mut r).unwrap(), want);
            let mut out = Vec::new();
            decompress(r, want).unwrap().read_to_end(&mut out).unwrap();
            assert_eq!(out, data, "{want:?}");
        }
    }
}
