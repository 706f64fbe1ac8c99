use std::process::ExitCode;

use anyhow::Result;
use zdb_client::Client;
use zdb_proto::v1::RaftRole;

/// One line per replica on every endpoint; unreachable nodes are reported and skipped.
pub async fn run(client: &Client) -> Result<ExitCode> {
    println!("NODE\tADDRESS\tRANGE\tROLE\tLEADER\tTERM\tCOMMIT\tAPPLIED\tLOG");
    let mut unreachable = 0;
    for endpoint in client.endpoints() {
        match client.node_status(endpoint).await {
            Ok(status) => {
                for replica in status.replicas {
                    let role = RaftRole::try_from(replica.role).map_or("?".into(), |role| {
                        role.as_str_name()
                            .trim_start_matches("RAFT_ROLE_")
                            .to_lowercase()
                    });
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}..{}",
                        status.node_id,
                        status.address,
                        replica.range.map_or(0, |range| range.range_id),
                        role,
                        replica.leader_id,
                        replica.term,
                        replica.commit_index,
                        replica.applied_index,
                        replica.first_log_index,
                        replica.last_log_index
                    );
                }
            }
            Err(err) => {
                unreachable += 1;
                eprintln!("{endpoint}: unreachable: {err}");
            }
        }
    }
    Ok(if unreachable == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
