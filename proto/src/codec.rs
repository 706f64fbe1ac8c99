//! prost's gRPC codec, except that a message that does not decode is
//! refused with INVALID_ARGUMENT: the sender's bytes are at fault, and zdb
//! promises a typed refusal for malformed requests (tonic says INTERNAL).

use prost::Message;
use tonic::codec::{BufferSettings, DecodeBuf, Decoder};
use tonic::Status;
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

pub struct ZdbCodec<T, U>(ProstCodec<T, U>);

impl<T, U> Default for ZdbCodec<T, U> {
    fn default() -> Self {
        ZdbCodec(ProstCodec::default())
    }
}

impl<T, U> tonic::codec::Codec for ZdbCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ZdbDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.0.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        ZdbDecoder(self.0.decoder())
    }
}

pub struct ZdbDecoder<U>(ProstDecoder<U>);

impl<U: Message + Default> Decoder for ZdbDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0.decode(buf).map_err(|status| {
            Status::invalid_argument(format!(
                "malformed message, not a valid protobuf encoding: {}",
                status.message()
            ))
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}
