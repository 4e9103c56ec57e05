//! Container lifecycle (first commit: signatures only, bodies being implemented).
use crate::{CreateOptions, Error, ErrorKind, Result, Runtime, State};
pub enum Mode { Create }
fn todo_err(id: &str) -> Error { Error::new(ErrorKind::Unavailable, format!("container {id}: being implemented")) }
pub fn create(_rt: &Runtime, id: &str, _o: &CreateOptions, _m: Mode) -> Result<i32> { Err(todo_err(id)) }
pub fn start(_rt: &Runtime, id: &str) -> Result<()> { Err(todo_err(id)) }
pub fn run(_rt: &Runtime, id: &str, _o: &CreateOptions, _d: bool, _k: bool) -> Result<i32> { Err(todo_err(id)) }
pub fn state(_rt: &Runtime, id: &str) -> Result<State> { Err(todo_err(id)) }
pub fn list(_rt: &Runtime) -> Result<Vec<State>> { Ok(vec![]) }
pub fn kill(_rt: &Runtime, id: &str, _s: i32, _a: bool) -> Result<()> { Err(todo_err(id)) }
pub fn delete(_rt: &Runtime, id: &str, _f: bool) -> Result<()> { Err(todo_err(id)) }
pub fn pids(_rt: &Runtime, id: &str) -> Result<Vec<i32>> { Err(todo_err(id)) }
pub fn pause(_rt: &Runtime, id: &str) -> Result<()> { Err(todo_err(id)) }
pub fn resume(_rt: &Runtime, id: &str) -> Result<()> { Err(todo_err(id)) }
pub fn stats(_rt: &Runtime, id: &str) -> Result<berth_cgroups::Stats> { Err(todo_err(id)) }
pub fn update(_rt: &Runtime, id: &str, _r: &oci_spec::runtime::LinuxResources) -> Result<()> { Err(todo_err(id)) }
