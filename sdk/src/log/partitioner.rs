//! Kafka's default partitioner for keyed records, bit for bit: Java clients, Kafka Streams and
//! librdkafka's `murmur2_random` put a key on the same partition as we do.

use super::{Cleanup, LogError, OutRecord};

/// Kafka's murmur2 hash (`org.apache.kafka.common.utils.Utils.murmur2`).
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;

    let mut h: u32 = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition of a key among `partitions`: `toPositive(murmur2(key)) % partitions`.
pub fn partition_for(key: &[u8], partitions: u32) -> u32 {
    assert!(partitions > 0, "a topic has at least one partition");
    ((murmur2(key) & 0x7fff_ffff) as u32) % partitions
}

/// The partition a record goes to on a topic of `count` partitions: its explicit partition
/// (checked), else its key's, else the next of a round robin kept in `unkeyed`.
/// A record without a key for a compacted topic is refused, as Kafka's broker refuses it.
pub(crate) fn destination(
    record: &OutRecord,
    count: u32,
    cleanup: Cleanup,
    unkeyed: &mut u32,
) -> Result<u32, LogError> {
    if cleanup.compacts() && record.key.is_none() {
        return Err(LogError::KeyRequired { topic: record.topic.to_string() });
    }
    match (record.partition, &record.key) {
        (Some(p), _) if p < count => Ok(p),
        (Some(p), _) => {
            Err(LogError::UnknownPartition { topic: record.topic.to_string(), partition: p, partitions: count })
        }
        (None, Some(key)) => Ok(partition_for(key, count)),
        (None, None) => {
            *unkeyed = unkeyed.wrapping_add(1);
            Ok(*unkeyed % count)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors from Kafka's `UtilsTest.testMurmur2`.
    #[test]
    fn murmur2_matches_kafka() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
            (b"abc", 479_470_107),
        ];
        for (input, expected) in cases {
            assert_eq!(murmur2(input), expected, "murmur2({:?})", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn partition_is_positive_modulo() {
        // toPositive(-973932308) = 1173551340; % 10 = 0
        assert_eq!(partition_for(b"21", 10), 1_173_551_340 % 10);
        assert!(partition_for(b"foobar", 7) < 7);
    }
}
