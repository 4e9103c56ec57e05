use crate::{Error, ErrorKind, ExecOptions, Result, Runtime};
pub fn exec(_rt: &Runtime, id: &str, _opts: &ExecOptions) -> Result<i32> {
    Err(Error::new(ErrorKind::Unavailable, format!("container {id}: exec is being implemented")))
}
