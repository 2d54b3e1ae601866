// GatedXLSTM
