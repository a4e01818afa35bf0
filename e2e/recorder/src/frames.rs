//! A passive reader of the frames a WebSocket server sends (RFC 6455 §5.2):
//! it sees the bytes the tunnel copies from the upstream to the client and
//! picks out the text messages, without changing or holding up anything.

/// Text messages reassembled from server frames fed in arbitrary pieces.
///
/// Binary messages and control frames are skipped; so are compressed
/// messages (RSV1 set, `permessage-deflate`), whose payload is not text.
/// A malformed frame stops the reading for good: the bytes still pass, they
/// are just not recorded any more.
#[derive(Debug)]
pub(crate) struct TextMessages {
    /// Recorded bytes per message; the rest of a longer message is skipped.
    limit: usize,
    state: State,
    /// The frame header read so far (2 to 14 bytes).
    header: Vec<u8>,
    /// The text message being reassembled; `None` between messages and
    /// inside messages that are not recorded.
    message: Option<Vec<u8>>,
    /// A compressed text message was skipped.
    compressed: bool,
    /// A malformed frame was seen.
    broken: bool,
}

#[derive(Debug)]
enum State {
    Header,
    Payload {
        remaining: u64,
        /// Masking key (server frames are normally unmasked).
        mask: Option<[u8; 4]>,
        /// Payload bytes of this frame read so far, for the mask.
        offset: usize,
        /// Whether the payload belongs to the recorded message.
        keep: bool,
        /// A data frame (not a control frame) with FIN set.
        ends_message: bool,
    },
}

impl TextMessages {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit,
            state: State::Header,
            header: Vec::with_capacity(14),
            message: None,
            compressed: false,
            broken: false,
        }
    }

    /// Whether a compressed text message went unrecorded.
    pub(crate) fn skipped_compressed(&self) -> bool {
        self.compressed
    }

    /// Reads `bytes`, the next ones the server sent; returns the text
    /// messages they complete.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut done = Vec::new();
        while !bytes.is_empty() && !self.broken {
            match &mut self.state {
                State::Header => {
                    let need = header_len(&self.header).unwrap_or(2);
                    let take = (need - self.header.len()).min(bytes.len());
                    self.header.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    if header_len(&self.header) == Some(self.header.len()) {
                        self.start_frame(&mut done);
                    }
                }
                State::Payload {
                    remaining,
                    mask,
                    offset,
                    keep,
                    ..
                } => {
                    let take = usize::try_from(*remaining)
                        .unwrap_or(usize::MAX)
                        .min(bytes.len());
                    if *keep && let Some(message) = &mut self.message {
                        let room = self.limit.saturating_sub(message.len());
                        let payload = &bytes[..take.min(room)];
                        match mask {
                            Some(key) => message.extend(
                                payload
                                    .iter()
                                    .enumerate()
                                    .map(|(i, b)| b ^ key[(*offset + i) % 4]),
                            ),
                            None => message.extend_from_slice(payload),
                        }
                    }
                    *offset += take;
                    *remaining -= take as u64;
                    bytes = &bytes[take..];
                    if *remaining == 0 {
                        self.end_frame(&mut done);
                    }
                }
            }
        }
        done
    }

    /// The header in `self.header` is complete.
    fn start_frame(&mut self, done: &mut Vec<Vec<u8>>) {
        let h = std::mem::take(&mut self.header);
        let fin = h[0] & 0x80 != 0;
        let rsv1 = h[0] & 0x40 != 0;
        let opcode = h[0] & 0x0f;
        let (len, rest) = match h[1] & 0x7f {
            126 => (u64::from(u16::from_be_bytes([h[2], h[3]])), &h[4..]),
            127 => {
                let mut len = [0; 8];
                len.copy_from_slice(&h[2..10]);
                (u64::from_be_bytes(len), &h[10..])
            }
            n => (u64::from(n), &h[2..]),
        };
        let mask = (h[1] & 0x80 != 0).then(|| [rest[0], rest[1], rest[2], rest[3]]);
        if len >> 63 != 0 {
            self.broken = true;
            return;
        }
        let (keep, ends_message) = match opcode {
            // Text.
            1 => {
                self.compressed |= rsv1;
                self.message = (!rsv1).then(Vec::new);
                (!rsv1, fin)
            }
            // Binary.
            2 => {
                self.message = None;
                (false, fin)
            }
            // Continuation.
            0 => (self.message.is_some(), fin),
            // Close, ping, pong.
            8..=10 => (false, false),
            _ => {
                self.broken = true;
                return;
            }
        };
        self.header = h;
        self.header.clear();
        self.state = State::Payload {
            remaining: len,
            mask,
            offset: 0,
            keep,
            ends_message,
        };
        if len == 0 {
            self.end_frame(done);
        }
    }

    fn end_frame(&mut self, done: &mut Vec<Vec<u8>>) {
        if let State::Payload {
            ends_message: true, ..
        } = self.state
            && let Some(message) = self.message.take()
        {
            done.push(message);
        }
        self.state = State::Header;
    }
}

/// The length of the frame header that starts with `h`, once its first two
/// bytes are known.
fn header_len(h: &[u8]) -> Option<usize> {
    let second = *h.get(1)?;
    let extended = match second & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if second & 0x80 == 0 { 0 } else { 4 };
    Some(2 + extended + mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut out = vec![u8::from(fin) << 7 | opcode];
        let mask_bit = if mask.is_some() { 0x80 } else { 0 };
        match payload.len() {
            n @ 0..=125 => out.push(mask_bit | u8::try_from(n).unwrap()),
            n @ 126..=0xffff => {
                out.push(mask_bit | 0x7e);
                out.extend_from_slice(&u16::try_from(n).unwrap().to_be_bytes());
            }
            n => {
                out.push(mask_bit | 0x7f);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        match mask {
            Some(key) => {
                out.extend_from_slice(&key);
                out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
            }
            None => out.extend_from_slice(payload),
        }
        out
    }

    fn texts(messages: Vec<Vec<u8>>) -> Vec<String> {
        messages
            .into_iter()
            .map(|m| String::from_utf8(m).unwrap())
            .collect()
    }

    #[test]
    fn text_messages_come_out_whole_however_the_bytes_are_cut() {
        let long = "x".repeat(70_000);
        let mut stream = Vec::new();
        stream.extend(frame(true, 1, b"hello", None));
        stream.extend(frame(true, 2, b"\x00binary", None));
        stream.extend(frame(false, 1, "fragm".as_bytes(), None));
        stream.extend(frame(true, 9, b"ping", None));
        stream.extend(frame(false, 0, b"en", None));
        stream.extend(frame(true, 0, b"ted", None));
        stream.extend(frame(true, 1, b"", None));
        stream.extend(frame(true, 1, b"masked", Some([1, 2, 3, 4])));
        stream.extend(frame(true, 1, "é 300 bytes".repeat(25).as_bytes(), None));
        stream.extend(frame(true, 1, long.as_bytes(), None));
        stream.extend(frame(true, 8, b"\x03\xe8bye", None));
        let expected = [
            "hello".to_owned(),
            "fragmented".to_owned(),
            String::new(),
            "masked".to_owned(),
            "é 300 bytes".repeat(25),
            long,
        ];
        for piece in [1, 2, 3, 7, 100, stream.len()] {
            let mut reader = TextMessages::new(usize::MAX);
            let mut got = Vec::new();
            for chunk in stream.chunks(piece) {
                got.extend(texts(reader.feed(chunk)));
            }
            assert_eq!(got, expected, "pieces of {piece}");
            assert!(!reader.skipped_compressed());
        }
    }

    #[test]
    fn messages_are_cut_at_the_limit_and_compressed_ones_skipped() {
        let mut reader = TextMessages::new(4);
        let mut stream = frame(false, 1, b"abc", None);
        stream.extend(frame(true, 0, b"def", None));
        stream.extend(frame(true, 1 | 0x40, b"\x4a\x4c", None));
        stream.extend(frame(true, 1, b"after", None));
        assert_eq!(texts(reader.feed(&stream)), ["abcd", "afte"]);
        assert!(reader.skipped_compressed());
    }

    #[test]
    fn a_malformed_frame_stops_the_reading() {
        let mut reader = TextMessages::new(usize::MAX);
        let mut stream = frame(true, 3, b"reserved opcode", None);
        stream.extend(frame(true, 1, b"unseen", None));
        assert!(reader.feed(&stream).is_empty());
    }
}
