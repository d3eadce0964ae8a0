"""The project's documentation pages (Markdown) and the script that takes the README's pictures."""
