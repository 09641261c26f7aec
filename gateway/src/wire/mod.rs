//! The bottom layer: the client protocol on the wire. Frame bodies in and
//! out ([`frame`]: decode, encode, pushes, error frames, kind names) and the
//! TCP length prefix ([`stream`]). Nothing here knows a connection, a
//! session or a service; everything above writes frames through here.

pub mod frame;
pub mod stream;
