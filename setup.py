"""Package set-up read from settings.ini (the nbdev 2 layout)."""
from configparser import ConfigParser
import setuptools, shlex

cfg = ConfigParser(delimiters=['='])
cfg.read('settings.ini', encoding='utf-8')
c = cfg['DEFAULT']

licenses = {'apache2': ('Apache Software License 2.0', 'OSI Approved :: Apache Software License')}
statuses = ['Planning', 'Pre-Alpha', 'Alpha', 'Beta', 'Production/Stable', 'Mature', 'Inactive']
lic = licenses[c['license']]
requirements = shlex.split(c.get('requirements', ''))
dev_requirements = shlex.split(c.get('dev_requirements', ''))

setuptools.setup(
    name=c['lib_name'],
    license=lic[0],
    classifiers=['Development Status :: ' + statuses[int(c['status'])],
                 'Intended Audience :: ' + c['audience'],
                 'License :: ' + lic[1],
                 'Natural Language :: ' + c['language']] +
                ['Programming Language :: Python :: 3.%d' % i for i in range(10, 14)],
    url=c['git_url'],
    packages=setuptools.find_packages(include=['tisr', 'tisr.*']),
    include_package_data=True,
    install_requires=requirements,
    extras_require={'dev': dev_requirements, 'onnx': shlex.split(c.get('onnx_requirements', ''))},
    dependency_links=c.get('dep_links', '').split(),
    python_requires='>=' + c['min_python'],
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    zip_safe=False,
    entry_points={'console_scripts': c.get('console_scripts', '').split(),
                  'nbdev': [f'{c["lib_path"]}={c["lib_path"]}._modidx:d']},
    version=c['version'],
    author=c['author'], author_email=c['author_email'],
    description=c['description'], keywords=c['keywords'],
)
