"""Redis edge of rollguard: releases, the version pointer, rollback commands and their audit."""
