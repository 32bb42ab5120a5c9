//! The look at a statement's first keyword that refuses transaction control
//! (`BEGIN`, `COMMIT`, ...) run as a plain statement, so the honest mistake
//! gets a clear message. Nothing relies on it for safety: the pool-return
//! check of each backend does.

use super::SqlError;

/// The first keyword of a statement, after blanks and comments.
pub(crate) fn first_keyword(sql: &str) -> String {
    let mut rest = sql;
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.split_once('\n').map_or("", |(_, tail)| tail);
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.split_once("*/").map_or("", |(_, tail)| tail);
        } else {
            break;
        }
    }
    rest.chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_uppercase()
}

/// Transactions are the interface's business (`begin`, `commit`,
/// `rollback`): a `BEGIN` run as a plain statement would leave a pooled
/// connection inside a transaction, a `COMMIT` would end one behind the
/// host's back. Savepoints are allowed inside a transaction.
pub(crate) fn refuse_transaction_control(
    connection: &str,
    sql: &str,
    in_transaction: bool,
) -> Result<(), SqlError> {
    let keyword = first_keyword(sql);
    let refused = match keyword.as_str() {
        "BEGIN" | "START" | "COMMIT" | "END" | "ROLLBACK" | "ABORT" => true,
        "SAVEPOINT" | "RELEASE" => !in_transaction,
        _ => false,
    };
    if refused {
        return Err(SqlError::failed(
            connection,
            format!(
                "`{keyword}` cannot run as a statement: use the interface's begin, commit and \
                 rollback for transactions"
            ),
        ));
    }
    Ok(())
}
