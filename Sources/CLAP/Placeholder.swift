// CLAP: placeholder until its first sources land.
