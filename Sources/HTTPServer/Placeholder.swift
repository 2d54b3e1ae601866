// HTTPServer: placeholder until its first sources land.
