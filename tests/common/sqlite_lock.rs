//! A second connection that holds a SQLite file locked: what another process writing the file
//! does to ace's writes (the store is slow, not down). Shared by `tests/store_sqlite.rs` and the
//! benches (`benches/support.rs`).

/// A second connection holding `path` in an exclusive transaction from when `locked` is sent
/// until `hold` has passed (what another process writing the file does to ace's writes).
pub fn hold_exclusive(
    path: &std::path::Path,
    hold: std::time::Duration,
) -> (std::sync::mpsc::Receiver<()>, std::thread::JoinHandle<()>) {
    use sqlx::Connection;
    let url = format!("sqlite://{}", path.display());
    let (locked, rx) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::raw_sql("BEGIN EXCLUSIVE").execute(&mut conn).await.unwrap();
            sqlx::raw_sql("INSERT INTO ace_error_patterns VALUES ('lock', 'held', '0', 1, 0)")
                .execute(&mut conn)
                .await
                .unwrap();
            locked.send(()).unwrap();
            tokio::time::sleep(hold).await;
            sqlx::raw_sql("COMMIT").execute(&mut conn).await.unwrap();
        });
    });
    (rx, holder)
}
