// DialogicalEmotionDecoder
