//! RESP3 commands out and replies in, through the `redis-protocol` codec: commands are
//! arrays of blob strings; replies are read with the accessors here, which never panic on
//! a reply of an unexpected shape (they return None).

use redis_protocol::resp3::encode::complete::encode;
use redis_protocol::resp3::types::{OwnedFrame, Resp3Frame};

/// Appends the command `args` (RESP3 array of blob strings) to `out`.
pub fn command(out: &mut Vec<u8>, args: &[&[u8]]) {
    let frame = OwnedFrame::Array {
        data: args
            .iter()
            .map(|a| OwnedFrame::BlobString {
                data: a.to_vec(),
                attributes: None,
            })
            .collect(),
        attributes: None,
    };
    let start = out.len();
    out.resize(start + frame.encode_len(false), 0);
    // The buffer was sized by the codec itself, so encoding cannot run out of room.
    if let Ok(written) = encode(&mut out[start..], &frame, false) {
        out.truncate(start + written);
    } else {
        out.truncate(start);
    }
}

/// The text of an error reply.
pub fn error(frame: &OwnedFrame) -> Option<String> {
    match frame {
        OwnedFrame::SimpleError { data, .. } => Some(data.clone()),
        OwnedFrame::BlobError { data, .. } => Some(String::from_utf8_lossy(data).into_owned()),
        _ => None,
    }
}

/// The bytes of a string reply.
pub fn bytes(frame: &OwnedFrame) -> Option<&[u8]> {
    match frame {
        OwnedFrame::BlobString { data, .. }
        | OwnedFrame::SimpleString { data, .. }
        | OwnedFrame::VerbatimString { data, .. } => Some(data),
        _ => None,
    }
}

/// An integer reply (or a string holding one).
pub fn int(frame: &OwnedFrame) -> Option<i64> {
    match frame {
        OwnedFrame::Number { data, .. } => Some(*data),
        _ => std::str::from_utf8(bytes(frame)?).ok()?.parse().ok(),
    }
}

/// The elements of an array (or push, or set) reply.
pub fn items(frame: &OwnedFrame) -> Option<&[OwnedFrame]> {
    match frame {
        OwnedFrame::Array { data, .. } | OwnedFrame::Push { data, .. } => Some(data),
        _ => None,
    }
}

pub fn is_null(frame: &OwnedFrame) -> bool {
    matches!(frame, OwnedFrame::Null)
}

/// A blob string frame, for scripted replies in tests.
#[cfg(test)]
pub fn blob(data: &[u8]) -> OwnedFrame {
    OwnedFrame::BlobString {
        data: data.to_vec(),
        attributes: None,
    }
}
