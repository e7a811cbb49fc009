"""The backbone adapter: one interface (`base.EiadBackbone`) over Hugging Face
vision-language models, one module per family, and `loading.load_backbone` to pick one."""
