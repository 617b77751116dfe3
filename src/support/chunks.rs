//! A bounded channel of byte chunks read as one stream: one thread
//! produces (downloads, decompresses), another consumes through `Read`.

use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// What a producer sends: the next bytes, or the error that ends the stream.
pub type Chunk = io::Result<Vec<u8>>;

/// A channel holding at most `bound` chunks in flight.
pub fn chunk_channel(bound: usize) -> (SyncSender<Chunk>, ChunkReader) {
    let (tx, rx) = sync_channel(bound);
    (
        tx,
        ChunkReader {
            rx,
            chunk: Vec::new(),
            pos: 0,
        },
    )
}

/// Reads `reader` to its end and sends it in chunks of `size` bytes (the
/// last one shorter). Stops early, without error, when the reader's end
/// is dropped: the consumer stopped and has its own reason.
pub fn send_chunks(reader: &mut dyn Read, tx: &SyncSender<Chunk>, size: usize) -> io::Result<()> {
    loop {
        let mut chunk = vec![0u8; size];
        let mut filled = 0;
        while filled < size {
            match reader.read(&mut chunk[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if filled == 0 {
            return Ok(());
        }
        chunk.truncate(filled);
        if tx.send(Ok(chunk)).is_err() {
            return Ok(());
        }
    }
}

/// The consumer's end. A producer's error comes out of `read`; the
/// channel closing is the end of the stream. Dropping the reader makes the
/// producer's next `send` fail, which tells it to stop.
pub struct ChunkReader {
    rx: Receiver<Chunk>,
    chunk: Vec<u8>,
    pos: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_chunks_fills_each_chunk_and_stops_when_the_reader_is_gone() {
        let (tx, mut rx) = chunk_channel(8);
        send_chunks(&mut &b"abcdefg"[..], &tx, 3).unwrap();
        drop(tx);
        let mut all = Vec::new();
        rx.read_to_end(&mut all).unwrap();
        assert_eq!(all, b"abcdefg");
        let (tx, rx) = chunk_channel(8);
        drop(rx);
        send_chunks(&mut &b"abc"[..], &tx, 1).unwrap();
    }

    #[test]
    fn chunks_read_as_one_stream_then_the_error() {
        let (tx, mut rx) = chunk_channel(4);
        std::thread::spawn(move || {
            for c in [&b"ab"[..], b"", b"cde"] {
                tx.send(Ok(c.to_vec())).unwrap();
            }
            tx.send(Err(io::Error::other("cut"))).unwrap();
        });
        let mut got = [0u8; 5];
        rx.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"abcde");
        assert_eq!(rx.read(&mut got).unwrap_err().to_string(), "cut");
        assert_eq!(rx.read(&mut got).unwrap(), 0);
    }
}
