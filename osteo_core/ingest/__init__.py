"""Reading exports: file discovery, encodings, headers mapped by a vendor profile, the raw layer."""
