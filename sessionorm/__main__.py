"""`python -m sessionorm`."""
from .cli import main

main()
