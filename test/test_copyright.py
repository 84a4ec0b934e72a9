# Copyright 2026 pilotnet_optimized contributors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""
What ament_copyright checks (it is not on PyPI).

Every source opens with the copyright notice and the Apache-2.0 licence that package.xml and
setup.py declare, and LICENSE holds that licence's text.
"""

import re

from helpers import linted_python_files, REPO
import pytest

NOTICE = re.compile(r'# Copyright \d{4}(-\d{4})? pilotnet_optimized contributors\n#\n'
                    r'# Licensed under the Apache License, Version 2\.0 \(the "License"\);\n')


@pytest.mark.copyright
@pytest.mark.linter
def test_every_source_carries_the_notice():
    missing = []
    for path in linted_python_files():
        text = path.read_text()
        if text.startswith('#!'):  # a script's shebang comes first
            text = text.split('\n', 1)[1]
        if (
            not NOTICE.match(text)
            or 'http://www.apache.org/licenses/LICENSE-2.0' not in text[:1000]
        ):
            missing.append(str(path.relative_to(REPO)))
    assert not missing, 'no Apache-2.0 copyright notice at the top of:\n' + '\n'.join(missing)


@pytest.mark.copyright
@pytest.mark.linter
def test_license_file_is_apache_2_and_matches_the_package():
    text = (REPO / 'LICENSE').read_text()
    assert 'Apache License' in text and 'Version 2.0, January 2004' in text
    assert 'TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION' in text
    assert 'END OF TERMS AND CONDITIONS' in text
    assert '<license>Apache-2.0</license>' in (REPO / 'package.xml').read_text()
    assert "license='Apache-2.0'" in (REPO / 'setup.py').read_text()
