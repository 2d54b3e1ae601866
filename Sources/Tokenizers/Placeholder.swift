// Tokenizers: placeholder until its first sources land.
