// AudioFrontEnd: placeholder until its first sources land.
