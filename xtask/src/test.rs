pub fn run(_lint: bool, _f: Option<&str>) -> anyhow::Result<()> { todo!() }
